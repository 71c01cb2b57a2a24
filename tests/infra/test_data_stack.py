"""The stateful stack: encryption, TLS-only, redrive, retention, and independence from compute."""

from tests.infra.conftest import VARIANTS, only, resources


def _denies_insecure_transport(policy_doc):
    return any(
        s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for s in policy_doc["Statement"]
    )


def test_switching_compute_leaves_the_data_stack_unchanged(variant):
    # GIVEN the same context except for the compute choice
    baseline = variant("lambda-sqs").data_json
    # THEN every logical id, property and export is identical
    for name in ("lambda-sns", "ecs"):
        other = variant(name).data_json
        assert sorted(other["Resources"]) == sorted(baseline["Resources"])
        assert other == baseline, f"data stack differs for {name}"


def test_topic_is_kms_encrypted_and_tls_only(variant):
    t = variant("lambda-sqs").data_json
    topic = only(t, "AWS::SNS::Topic")
    assert "KmsMasterKeyId" in topic
    assert only(t, "AWS::KMS::Key")["EnableKeyRotation"] is True
    assert _denies_insecure_transport(only(t, "AWS::SNS::TopicPolicy")["PolicyDocument"])


def test_queues_are_encrypted_tls_only_and_redrive_after_max_receive_count(variant):
    for name, expected_count in (("lambda-sqs", 5), ("lambda-tuned", 3)):
        t = variant(name).data_json
        queues = resources(t, "AWS::SQS::Queue")
        assert len(queues) == 2
        assert all(q["Properties"]["SqsManagedSseEnabled"] is True for q in queues.values())
        policies = resources(t, "AWS::SQS::QueuePolicy")
        assert len(policies) == 2
        assert all(_denies_insecure_transport(p["Properties"]["PolicyDocument"]) for p in policies.values())
        [work] = [q["Properties"] for q in queues.values() if "RedrivePolicy" in q["Properties"]]
        assert work["RedrivePolicy"]["maxReceiveCount"] == expected_count
        assert work["VisibilityTimeout"] == int(VARIANTS[name].get("queueVisibilityTimeoutSeconds", 180))


def test_only_the_order_topic_may_send_to_the_queues(variant):
    t = variant("lambda-sqs").data_json
    for policy in resources(t, "AWS::SQS::QueuePolicy").values():
        [allow] = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
        assert allow["Principal"] == {"Service": "sns.amazonaws.com"}
        assert allow["Action"] == "sqs:SendMessage"
        assert "aws:SourceArn" in allow["Condition"]["ArnEquals"]


def test_tables_have_pitr_encryption_and_idempotency_ttl(variant):
    v = variant("lambda-sqs")
    v.data.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "order_id", "KeyType": "HASH"}],
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
            "DeletionProtectionEnabled": True,
        },
    )
    v.data.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
        },
    )
    # The catalog: a product item and its stock shards per SKU, on-demand (a sale is a spike), kept like the orders
    v.data.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [
                {"AttributeName": "sku", "KeyType": "HASH"},
                {"AttributeName": "part", "KeyType": "RANGE"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
            "DeletionProtectionEnabled": True,
        },
    )
    outputs = v.data_json["Outputs"]
    assert outputs["StockShards"]["Value"] == "4" and "CatalogTableName" in outputs


def test_stateful_resources_are_retained_and_protected_unless_throwaway(variant):
    kept, throwaway = variant("lambda-sqs"), variant("lambda-tuned")
    assert kept.data_stack.termination_protection is True
    assert throwaway.data_stack.termination_protection is False
    for rtype in ("AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::SNS::Topic", "AWS::KMS::Key"):
        kept.data.all_resources(rtype, {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"})
        throwaway.data.all_resources(rtype, {"DeletionPolicy": "Delete"})
    throwaway.data.all_resources_properties("AWS::DynamoDB::Table", {"DeletionProtectionEnabled": False})
