"""Lambda variant: concurrency, triggers, failure routing, API and least privilege."""

import json

import pytest

from tests.infra.conftest import PAY_AND_PUBLISH, function_by_handler, only, policy_actions, resources

ENV_CONTRACT = {
    "ORDER_EVENTS_TOPIC_ARN",
    "ORDERS_QUEUE_URL",
    "ORDERS_TABLE_NAME",
    "IDEMPOTENCY_TABLE_NAME",
    "PAYMENT_SLOTS",
    "PAYMENT_LATENCY_MS",
    "PAYMENT_FAILURE_RATE",
}


def worker_function(t):
    return function_by_handler(t, "orders.entrypoints.worker_lambda.handler")


def api_function(t):
    return function_by_handler(t, "orders.entrypoints.api.handler")


@pytest.mark.parametrize(
    ("name", "reserved", "max_conc", "batch"), [("lambda-sqs", 50, 50, 5), ("lambda-tuned", None, 12, 3)]
)
def test_sqs_trigger_follows_context(variant, name, reserved, max_conc, batch):
    t = variant(name).service_json
    fn = worker_function(t)
    # reservedConcurrency=0 (lambda-tuned): unreserved, the mapping's maxConcurrency is the only cap
    assert fn.get("ReservedConcurrentExecutions") == reserved
    assert fn["Architectures"] == ["arm64"]
    esm = only(t, "AWS::Lambda::EventSourceMapping", "LambdaWorkers")
    assert esm["ScalingConfig"]["MaximumConcurrency"] == max_conc <= (reserved or 1000)
    assert esm["BatchSize"] == batch
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # the queue's subscription lives at the stack's WorkersInbox, whatever compute is
    assert not resources(t, "AWS::SNS::Subscription", "LambdaWorkers")
    sub = only(t, "AWS::SNS::Subscription", "WorkersInbox")
    assert sub["Protocol"] == "sqs" and sub["RawMessageDelivery"] is True
    assert sub["FilterPolicy"] == {"event_type": ["order_placed"]}
    # what SNS cannot deliver to the queue is parked in the DLQ (alarmed), not dropped
    assert "DeadLetter" in json.dumps(sub["RedrivePolicy"]["deadLetterTargetArn"])
    assert not resources(t, "AWS::Lambda::EventInvokeConfig")


def test_provisioned_pollers_replace_the_mappings_maximum_concurrency(variant):
    """GIVEN lambdaPollerMode=provisioned (3..4 pollers) WHEN synthesized THEN the mapping carries the pollers
    and no ScalingConfig (AWS refuses both), and the cap the alarms watch is 4 pollers x 10 invokes (< reserved 50).
    A switch between the modes is two steps (the switch audit and the preflight)."""
    t = variant("lambda-provisioned").service_json
    esm = only(t, "AWS::Lambda::EventSourceMapping", "LambdaWorkers")
    assert esm["ProvisionedPollerConfig"] == {"MinimumPollers": 3, "MaximumPollers": 4}
    assert "ScalingConfig" not in esm
    assert esm["BatchSize"] == 5 and esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert worker_function(t)["ReservedConcurrentExecutions"] == 50
    [saturation] = [
        a["Properties"]
        for a in resources(t, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "ConcurrentExecutions"
    ]
    assert saturation["Threshold"] == 40
    # The standard variant's mapping has no pollers
    standard = only(variant("lambda-sqs").service_json, "AWS::Lambda::EventSourceMapping", "LambdaWorkers")
    assert "ProvisionedPollerConfig" not in standard


def test_tuned_memory_timeout_and_window(variant):
    t = variant("lambda-tuned").service_json
    fn = worker_function(t)
    assert fn["MemorySize"] == 1024 and fn["Timeout"] == 20
    assert only(t, "AWS::Lambda::EventSourceMapping", "LambdaWorkers")["MaximumBatchingWindowInSeconds"] == 2


def test_sns_trigger_retries_then_dead_letters(variant):
    t = variant("lambda-sns").service_json
    # the orders queue keeps a consumer (what an earlier variant left, what a redrive sends back)
    drain = only(t, "AWS::Lambda::EventSourceMapping", "LambdaWorkers")
    assert drain["ScalingConfig"]["MaximumConcurrency"] == 2
    assert drain["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert not resources(t, "AWS::SNS::Subscription", "WorkersInbox")  # the topic invokes the function itself
    invoke = only(t, "AWS::Lambda::EventInvokeConfig")
    assert invoke["MaximumRetryAttempts"] == 2
    assert invoke["MaximumEventAgeInSeconds"] == 21600
    assert "OnFailure" in invoke["DestinationConfig"]
    sub = only(t, "AWS::SNS::Subscription", "LambdaWorkers")
    assert sub["Protocol"] == "lambda"
    assert sub["FilterPolicy"] == {"event_type": ["order_placed"]}
    assert "deadLetterTargetArn" in sub["RedrivePolicy"]
    assert "sqs:SendMessage" in policy_actions(t, "LambdaWorkers")  # the on-failure destination


def test_both_functions_run_the_runtime_with_the_environment_contract_and_official_layer(variant):
    for name in ("lambda-sqs", "lambda-sns", "ecs"):
        t = variant(name).service_json
        fns = [api_function(t)] + ([worker_function(t)] if name != "ecs" else [])
        for fn in fns:
            assert set(fn["Environment"]["Variables"]) >= ENV_CONTRACT
            [layer] = fn["Layers"]
            assert "AWSLambdaPowertoolsPythonV3-python313-arm64:27" in str(layer)
            assert fn["Runtime"] == "python3.13"


def test_worker_role_holds_only_what_the_worker_needs(variant):
    t = variant("lambda-sqs").service_json
    assert policy_actions(t, "LambdaWorkers") == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",  # idempotency records of failed payments
        "sns:Publish",
        "kms:GenerateDataKey",
        "kms:Decrypt",
        # granted by the event source mapping
        "sqs:ReceiveMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueUrl",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    }


def test_api_role_holds_only_what_the_api_needs(variant):
    t = variant("lambda-sqs").service_json
    assert policy_actions(t, "ApiFunction") == PAY_AND_PUBLISH | {
        "sqs:GetQueueAttributes",
        "dynamodb:BatchGetItem",  # products by SKU (the catalog only, below)
        "dynamodb:Scan",  # the sale page's listing
    }


def _catalog_actions(template: dict, role_fragment: str) -> set[str]:
    """The actions a role's policies grant on the catalog table (imported from the data stack)."""
    actions: set[str] = set()
    for policy in resources(template, "AWS::IAM::Policy").values():
        if role_fragment not in json.dumps(policy["Properties"]["Roles"]):
            continue
        for stmt in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "Catalog" in json.dumps(stmt["Resource"]):
                actions.update(stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]])
    return actions


def test_the_catalog_is_read_and_reserved_by_the_api_and_given_back_by_whoever_fails_an_order(variant):
    # Stock is taken in the API's transaction (UpdateItem of a shard) and given back by the transition
    # that fails an order (API tombstone, worker decline, reconciler); nobody else writes or deletes it.
    for name in ("lambda-sqs", "ecs"):
        t = variant(name).service_json
        assert _catalog_actions(t, "ApiFunction") == {"dynamodb:BatchGetItem", "dynamodb:Scan", "dynamodb:UpdateItem"}
        assert _catalog_actions(t, "Reconciler") == {"dynamodb:UpdateItem"}
        worker = "LambdaWorkersFunction" if name != "ecs" else "TaskRole"
        assert _catalog_actions(t, worker) == {"dynamodb:UpdateItem"}, name


def test_no_policy_anywhere_grants_wildcard_actions(variant):
    for name in ("lambda-sqs", "lambda-sns", "ecs"):
        t = variant(name).service_json
        for policy in resources(t, "AWS::IAM::Policy").values():
            for stmt in policy["Properties"]["PolicyDocument"]["Statement"]:
                acts = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
                assert not [a for a in acts if "*" in a], (name, acts)


def test_api_routes_are_iam_authorized_by_default_and_open_only_on_request(variant):
    default = variant("lambda-sqs").service_json
    routes = resources(default, "AWS::ApiGatewayV2::Route", "ApiHttpApi")
    auth = {r["Properties"]["RouteKey"]: r["Properties"].get("AuthorizationType", "NONE") for r in routes.values()}
    assert auth == {
        "POST /orders": "AWS_IAM",
        "POST /orders/sync": "AWS_IAM",
        "GET /orders/{order_id}": "AWS_IAM",
        "GET /orders/{order_id}/events": "AWS_IAM",
        "GET /catalog": "NONE",  # the public sale page: read-only prices and stock left
    }
    opened = variant("lambda-tuned").service_json
    assert {
        r["Properties"].get("AuthorizationType", "NONE")
        for r in resources(opened, "AWS::ApiGatewayV2::Route", "ApiHttpApi").values()
    } == {"NONE"}


def test_api_stage_throttles_and_logs_access(variant):
    stage = only(variant("lambda-sqs").service_json, "AWS::ApiGatewayV2::Stage", "ApiDefaultStage")
    assert stage["StageName"] == "$default" and stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"] == {"ThrottlingBurstLimit": 200, "ThrottlingRateLimit": 100}
    assert "DestinationArn" in stage["AccessLogSettings"] and "requestId" in stage["AccessLogSettings"]["Format"]


def test_alarms_and_one_dashboard(variant):
    t = variant("lambda-sqs").service_json
    alarms = resources(t, "AWS::CloudWatch::Alarm")
    metric_names = {a["Properties"].get("MetricName") for a in alarms.values()}
    assert {
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
        "RecordsFailed",
        "ConcurrentExecutions",
        "5xx",
        "Latency",
    } <= metric_names
    assert all(a["Properties"]["AlarmActions"] for a in alarms.values())
    assert len(resources(t, "AWS::CloudWatch::Dashboard")) == 1
    assert "KmsMasterKeyId" in only(t, "AWS::SNS::Topic")
