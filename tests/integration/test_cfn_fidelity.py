"""The emulator creates, updates and deletes what moto ignores as CloudFormation does (moto in-process).

Each test would pass on moto alone only if the defect it names were absent: moto ignores
AWS::SNS::Subscription, the policies and EventInvokeConfig, and deletes before it creates.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sandbox.emulator import moto_fixes
from sandbox.emulator.iam_policy import policy_allows
from sandbox.emulator.queues import async_queue_name
from tests.helpers import one_key_table

REGION = "us-east-1"
ORDER = json.dumps({"event_type": "order_placed", "order_id": "o-1"})


@pytest.fixture(scope="module", autouse=True)
def _fidelity() -> None:
    moto_fixes.apply()


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        yield {s: boto3.client(s, region_name=REGION) for s in ("cloudformation", "sns", "sqs", "lambda", "iam")}


def queue_policy(allow_topic: bool) -> dict[str, Any]:
    statements: list[dict[str, Any]] = [
        {
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "sqs:*",
            "Resource": {"Fn::GetAtt": ["Queue", "Arn"]},
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]
    if allow_topic:
        statements.append(
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": {"Fn::GetAtt": ["Queue", "Arn"]},
                "Condition": {"ArnEquals": {"aws:SourceArn": {"Ref": "Topic"}}},
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def template(subscription_id: str | None = "Sub", *, allow_topic: bool = True, raw: bool = True) -> str:
    resources: dict[str, Any] = {
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "events"}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "orders"}},
        "QueuePolicy": {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {"Queues": [{"Ref": "Queue"}], "PolicyDocument": queue_policy(allow_topic)},
        },
    }
    if subscription_id:
        resources[subscription_id] = {
            "Type": "AWS::SNS::Subscription",
            "Properties": {
                "Protocol": "sqs",
                "TopicArn": {"Ref": "Topic"},
                "Endpoint": {"Fn::GetAtt": ["Queue", "Arn"]},
                "RawMessageDelivery": raw,
                "FilterPolicy": {"event_type": ["order_placed"]},
            },
        }
    outputs = {"Topic": {"Value": {"Ref": "Topic"}}, "Queue": {"Value": {"Ref": "Queue"}}}
    return json.dumps({"Resources": resources, "Outputs": outputs})


def deploy(aws: dict[str, Any], body: str, *, update: bool = False) -> dict[str, str]:
    cfn = aws["cloudformation"]
    (cfn.update_stack if update else cfn.create_stack)(StackName="s", TemplateBody=body)
    [stack] = cfn.describe_stacks(StackName="s")["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


def publish(aws: dict[str, Any], topic: str, event_type: str = "order_placed", body: str = ORDER) -> None:
    aws["sns"].publish(
        TopicArn=topic,
        Message=body,
        MessageAttributes={"event_type": {"DataType": "String", "StringValue": event_type}},
    )


def received(aws: dict[str, Any], url: str) -> list[str]:
    got = aws["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [m["Body"] for m in got]


def test_a_subscription_is_created_with_its_attributes_and_delivers_filtered_raw(aws: dict[str, Any]) -> None:
    out = deploy(aws, template())
    [sub] = aws["sns"].list_subscriptions_by_topic(TopicArn=out["Topic"])["Subscriptions"]
    attrs = aws["sns"].get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])["Attributes"]
    assert json.loads(attrs["FilterPolicy"]) == {"event_type": ["order_placed"]}
    publish(aws, out["Topic"])
    publish(aws, out["Topic"], "payment_confirmed", "{}")
    assert received(aws, out["Queue"]) == [ORDER]


def test_an_identical_subscription_under_a_new_logical_id_is_gone_after_the_update(aws: dict[str, Any]) -> None:
    # GIVEN a subscription at one logical id
    out = deploy(aws, template("OldSub"))
    # WHEN an update moves the identical subscription to another logical id (as a compute switch did)
    deploy(aws, template("NewSub"), update=True)
    # THEN, as on AWS, Subscribe returned the existing ARN and the cleanup unsubscribed it: nothing delivers
    assert aws["sns"].list_subscriptions_by_topic(TopicArn=out["Topic"])["Subscriptions"] == []
    publish(aws, out["Topic"])
    assert received(aws, out["Queue"]) == []


def test_a_subscription_kept_at_its_logical_id_survives_an_update_of_its_attributes(aws: dict[str, Any]) -> None:
    out = deploy(aws, template(raw=True))
    deploy(aws, template(raw=False), update=True)
    assert len(aws["sns"].list_subscriptions_by_topic(TopicArn=out["Topic"])["Subscriptions"]) == 1
    publish(aws, out["Topic"])
    [body] = received(aws, out["Queue"])
    assert json.loads(body)["Message"] == ORDER  # no longer raw: the SNS envelope
    deploy(aws, template(None), update=True)
    assert aws["sns"].list_subscriptions_by_topic(TopicArn=out["Topic"])["Subscriptions"] == []


def test_the_queue_policy_is_stored_and_a_queue_that_refuses_the_topic_receives_nothing(aws: dict[str, Any]) -> None:
    out = deploy(aws, template(allow_topic=False))
    policy = aws["sqs"].get_queue_attributes(QueueUrl=out["Queue"], AttributeNames=["Policy"])["Attributes"]["Policy"]
    assert [s["Effect"] for s in json.loads(policy)["Statement"]] == ["Deny"]
    publish(aws, out["Topic"])
    assert received(aws, out["Queue"]) == []
    deploy(aws, template(allow_topic=True), update=True)
    publish(aws, out["Topic"])
    assert received(aws, out["Queue"]) == [ORDER]


def test_a_topic_policy_is_stored_and_reset_to_the_default_on_delete(aws: dict[str, Any]) -> None:
    doc = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sns:Publish", "Resource": "*"}],
    }
    with_policy = {
        "Resources": {
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "events"}},
            "Policy": {
                "Type": "AWS::SNS::TopicPolicy",
                "Properties": {"Topics": [{"Ref": "Topic"}], "PolicyDocument": doc},
            },
        },
        "Outputs": {"Topic": {"Value": {"Ref": "Topic"}}},
    }
    topic = deploy(aws, json.dumps(with_policy))["Topic"]
    read = aws["sns"].get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"]
    assert json.loads(read) == doc
    del with_policy["Resources"]["Policy"]
    deploy(aws, json.dumps(with_policy), update=True)
    read = aws["sns"].get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"]
    assert json.loads(read)["Id"] == "__default_policy_ID"


def lambda_template(*, permitted: bool, retries: int = 1) -> str:
    role = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        },
    }
    resources: dict[str, Any] = {
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "events"}},
        "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "dlq"}},
        "DlqPolicy": {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [{"Ref": "Dlq"}],
                "PolicyDocument": {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "sns.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": {"Fn::GetAtt": ["Dlq", "Arn"]},
                            "Condition": {"ArnEquals": {"aws:SourceArn": {"Ref": "Topic"}}},
                        }
                    ]
                },
            },
        },
        "Role": role,
        "Fn": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Runtime": "python3.12",
                "Handler": "index.handler",
                "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "Code": {"ZipFile": "def handler(event, context): return None"},
            },
        },
        "InvokeConfig": {
            "Type": "AWS::Lambda::EventInvokeConfig",
            "Properties": {
                "FunctionName": {"Ref": "Fn"},
                "Qualifier": "$LATEST",
                "MaximumRetryAttempts": retries,
                "MaximumEventAgeInSeconds": 3600,
                "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["Dlq", "Arn"]}}},
            },
        },
        "Sub": {
            "Type": "AWS::SNS::Subscription",
            "Properties": {
                "Protocol": "lambda",
                "TopicArn": {"Ref": "Topic"},
                "Endpoint": {"Fn::GetAtt": ["Fn", "Arn"]},
                "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]}},
            },
        },
    }
    if permitted:
        resources["Permission"] = {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": {"Ref": "Fn"},
                "Principal": "sns.amazonaws.com",
                "SourceArn": {"Ref": "Topic"},
            },
        }
    outputs = {k: {"Value": {"Ref": k}} for k in ("Topic", "Fn", "Dlq")}
    return json.dumps({"Resources": resources, "Outputs": outputs})


def test_lambda_events_go_to_the_functions_async_queue_and_its_invoke_config_is_readable(aws: dict[str, Any]) -> None:
    out = deploy(aws, lambda_template(permitted=True))
    config = aws["lambda"].get_function_event_invoke_config(FunctionName=out["Fn"])
    assert (config["MaximumRetryAttempts"], config["MaximumEventAgeInSeconds"]) == (1, 3600)
    assert config["DestinationConfig"]["OnFailure"]["Destination"].endswith(":" + out["Dlq"].rsplit("/", 1)[1])
    publish(aws, out["Topic"])
    url = aws["sqs"].get_queue_url(QueueName=async_queue_name(out["Fn"]))["QueueUrl"]
    [event] = received(aws, url)
    assert json.loads(event)["Message"] == ORDER
    assert received(aws, out["Dlq"]) == []


def test_without_the_lambda_permission_sns_sends_the_event_to_the_subscription_dlq(aws: dict[str, Any]) -> None:
    out = deploy(aws, lambda_template(permitted=False))
    publish(aws, out["Topic"])
    [parked] = received(aws, out["Dlq"])
    assert json.loads(parked)["Message"] == ORDER


def test_an_invoke_config_outside_awss_ranges_fails_the_deploy(aws: dict[str, Any]) -> None:
    with pytest.raises(Exception, match="MaximumRetryAttempts"):
        deploy(aws, lambda_template(permitted=True, retries=3))


@pytest.mark.parametrize(
    ("statement", "allowed"),
    [
        ({"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage"}, True),
        ({"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:ReceiveMessage"}, False),
        ({"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:*"}, False),
        (
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "*",
                "Condition": {"ArnEquals": {"aws:SourceArn": "arn:x"}},
            },
            False,
        ),
        (
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": "1.2.3.4"}},
            },
            False,
        ),
    ],
)
def test_policy_evaluation(statement: dict[str, Any], allowed: bool) -> None:
    context = {"aws:SourceArn": "arn:aws:sns:us-east-1:1:t", "aws:SecureTransport": "true"}
    policy = {"Statement": [statement]}
    assert (
        policy_allows(policy, service="sns.amazonaws.com", action="sqs:SendMessage", resource="q", context=context)
        is allowed
    )


def test_an_explicit_deny_wins() -> None:
    allow = {"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage"}
    deny = {"Effect": "Deny", "Principal": "*", "Action": "sqs:*"}
    context = {"aws:SourceArn": "t"}
    kwargs = {"service": "sns.amazonaws.com", "action": "sqs:SendMessage", "resource": "q", "context": context}
    assert policy_allows({"Statement": [allow]}, **kwargs) is True
    assert policy_allows({"Statement": [allow, deny]}, **kwargs) is False


def test_a_second_subscription_of_the_same_endpoint_with_other_attributes_fails_the_update(aws: dict[str, Any]) -> None:
    # GIVEN a raw subscription; WHEN a new logical id subscribes the same queue without raw delivery
    deploy(aws, template("OldSub", raw=True))
    body = json.loads(template("OldSub", raw=True))
    other = dict(body["Resources"]["OldSub"], Properties={**body["Resources"]["OldSub"]["Properties"]})
    other["Properties"]["RawMessageDelivery"] = False
    body["Resources"]["NewSub"] = other
    # THEN SNS refuses it, as Subscribe does on AWS
    with pytest.raises(Exception, match="different attributes"):
        deploy(aws, json.dumps(body), update=True)


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        ({"StringNotEquals": {"aws:SourceAccount": "111111111111"}}, False),  # the request's own account
        ({"StringNotEquals": {"aws:SourceAccount": "222222222222"}}, True),
        ({"StringEquals": {"aws:PrincipalOrgID": "o-1"}}, False),  # a key the request lacks: false
        ({"StringNotEquals": {"aws:PrincipalOrgID": "o-1"}}, True),  # ... negated: true
        ({"ArnEqualsIfExists": {"aws:SourceVpce": "x"}}, True),
    ],
)
def test_a_deny_applies_by_iams_rules_for_negated_operators_and_missing_keys(
    condition: dict[str, Any], holds: bool
) -> None:
    allow = {"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage"}
    deny = {"Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Condition": condition}
    context = {"aws:SourceAccount": "111111111111"}
    kwargs = {"service": "sns.amazonaws.com", "action": "sqs:SendMessage", "resource": "q", "context": context}
    assert policy_allows({"Statement": [allow, deny]}, **kwargs) is (not holds)


def _dynamodb_responses(ddb: Any) -> list[Any]:
    """One of each read and write response shape the pipeline gets, on an item with every attribute type."""
    item = {
        "pk": {"S": "order#1"},
        "sk": {"S": "v"},
        "total": {"N": "1299.00"},
        "paid": {"BOOL": True},
        "gone": {"NULL": True},
        "tags": {"SS": ["a", "b"]},
        "sizes": {"NS": ["1", "2.5"]},
        "blob": {"B": b"\x00\x01binary"},
        "empty": {"S": ""},
        "log": {"L": [{"M": {"seq": {"N": "1"}, "status": {"S": "PLACED"}, "detail": {"M": {}}}}, {"L": []}]},
    }
    key = {"pk": item["pk"], "sk": item["sk"]}
    out: list[Any] = [ddb.put_item(TableName="t", Item=item, ReturnValues="ALL_OLD")]
    out.append(ddb.get_item(TableName="t", Key=key, ConsistentRead=True))
    out.append(
        ddb.update_item(
            TableName="t",
            Key=key,
            UpdateExpression="SET #l = list_append(#l, :e), paid = :f",
            ExpressionAttributeNames={"#l": "log"},
            ExpressionAttributeValues={":e": {"L": [{"M": {"seq": {"N": "2"}}}]}, ":f": {"BOOL": False}},
            ReturnValues="ALL_NEW",
        )
    )
    out.append(ddb.query(TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": key["pk"]}))
    out.append(ddb.scan(TableName="t"))
    out.append(ddb.batch_get_item(RequestItems={"t": {"Keys": [key]}}))
    out.append(ddb.transact_get_items(TransactItems=[{"Get": {"TableName": "t", "Key": key}}]))
    try:
        ddb.put_item(
            TableName="t",
            Item=item,
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ddb.exceptions.ConditionalCheckFailedException as exc:
        out.append(exc.response.get("Item"))
    out.append(ddb.delete_item(TableName="t", Key=key, ReturnValues="ALL_OLD"))
    for r in out:
        if isinstance(r, dict):
            r.pop("ResponseMetadata", None)
    return out


def test_dynamodb_responses_are_the_same_through_the_attribute_value_fast_path() -> None:
    from moto.core.serialize import BaseJSONSerializer

    moto_fixes.fix_dynamodb_attribute_value_serialization()
    fast = BaseJSONSerializer._serialize_type_structure
    seen = []
    for serializer in (fast, fast.moto_original):  # type: ignore[attr-defined]
        BaseJSONSerializer._serialize_type_structure = serializer  # type: ignore[method-assign]
        try:
            with mock_aws():
                ddb = boto3.client("dynamodb", region_name="us-east-1")
                ddb.create_table(
                    TableName="t",
                    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                    AttributeDefinitions=[
                        {"AttributeName": "pk", "AttributeType": "S"},
                        {"AttributeName": "sk", "AttributeType": "S"},
                    ],
                    BillingMode="PAY_PER_REQUEST",
                )
                seen.append(_dynamodb_responses(ddb))
        finally:
            BaseJSONSerializer._serialize_type_structure = fast  # type: ignore[method-assign]
    assert seen[0] == seen[1]
    assert seen[0][1]["Item"]["blob"] == {"B": b"\x00\x01binary"}  # binary still base64 on the wire, decoded here


UPDATES = [
    # (UpdateExpression, names, values): the pipeline's shapes, repeated, and ones moto must refuse
    (
        "SET #s = :s, #l = list_append(if_not_exists(#l, :empty), :e), #q = #q + :one",
        {"#s": "status", "#l": "log", "#q": "seq"},
        {":s": {"S": "PAYING"}, ":empty": {"L": []}, ":e": {"L": [{"M": {"seq": {"N": "2"}}}]}, ":one": {"N": "1"}},
    ),
    (
        "SET #s = :s, #l = list_append(if_not_exists(#l, :empty), :e), #q = #q + :one",
        {"#s": "status", "#l": "log", "#q": "seq"},
        {":s": {"S": "PAID"}, ":empty": {"L": []}, ":e": {"L": [{"M": {"seq": {"N": "3"}}}]}, ":one": {"N": "1"}},
    ),
    ("SET sold = sold + :q, #left = #left - :q REMOVE hold", {"#left": "left"}, {":q": {"N": "2"}}),
    ("ADD tags :t DELETE sizes :n", {}, {":t": {"SS": ["c"]}, ":n": {"NS": ["1"]}}),
    ("SET #s = :s SET #s = :s", {"#s": "status"}, {":s": {"S": "x"}}),  # two SET clauses: refused
    ("SET = :s", {}, {":s": {"S": "x"}}),  # not an expression: refused
    ("SET #missing = :s", {}, {":s": {"S": "x"}}),  # an undefined name: refused
]


def _apply_updates(ddb: Any) -> list[Any]:
    out: list[Any] = []
    for pk in ("existing", "new"):  # an existing item, and one UpdateItem creates (validated twice)
        if pk == "existing":
            ddb.put_item(
                TableName="u",
                Item={
                    "pk": {"S": pk},
                    "seq": {"N": "1"},
                    "sold": {"N": "0"},
                    "left": {"N": "9"},
                    "sizes": {"NS": ["1", "2"]},
                },
            )
        for expression, names, values in UPDATES:
            kwargs: dict[str, Any] = {"TableName": "u", "Key": {"pk": {"S": pk}}, "UpdateExpression": expression}
            kwargs.update(
                {"ExpressionAttributeValues": values} | ({"ExpressionAttributeNames": names} if names else {})
            )
            try:
                out.append(ddb.update_item(**kwargs, ReturnValues="ALL_NEW").get("Attributes"))
            except Exception as exc:
                out.append((type(exc).__name__, str(exc)))
    return out


def test_dynamodb_updates_are_the_same_with_parsed_expressions_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    import copy

    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    moto_fixes.fix_dynamodb_update_expression_reuse()
    reused, reused_copy = UpdateExpressionParser.make, validators.deepcopy
    seen = []
    for mode in ("reused", "moto"):
        if mode == "moto":
            monkeypatch.setattr(UpdateExpressionParser, "make", classmethod(reused.moto_original))  # type: ignore[attr-defined]
            monkeypatch.setattr(validators, "deepcopy", copy.deepcopy)
        with mock_aws():
            ddb = boto3.client("dynamodb", region_name="us-east-1")
            one_key_table(ddb, "u", "pk")
            seen.append(_apply_updates(ddb))
    monkeypatch.undo()
    assert UpdateExpressionParser.make == reused and validators.deepcopy is reused_copy
    assert seen[0] == seen[1]
    assert sum(isinstance(r, tuple) for r in seen[0]) >= 6  # the refusals were exercised, both items


def mapping_template(scaling: dict[str, Any]) -> str:
    """A function reading a queue through a mapping with ``scaling`` (ScalingConfig and/or ProvisionedPollerConfig)."""
    body = json.loads(lambda_template(permitted=True))
    resources = {k: body["Resources"][k] for k in ("Role", "Fn")}
    resources["Queue"] = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "orders"}}
    resources["Mapping"] = {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Properties": {
            "FunctionName": {"Ref": "Fn"},
            "EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]},
            "BatchSize": 5,
            **scaling,
        },
    }
    return json.dumps({"Resources": resources, "Outputs": {"Fn": {"Value": {"Ref": "Fn"}}}})


MAXIMUM = {"ScalingConfig": {"MaximumConcurrency": 50}}
POLLERS = {"ProvisionedPollerConfig": {"MinimumPollers": 2, "MaximumPollers": 5}}


def test_a_mapping_with_a_maximum_concurrency_and_pollers_is_refused(aws: dict[str, Any]) -> None:
    with pytest.raises(Exception, match="maximum concurrency setting and provisioned mode"):
        deploy(aws, mapping_template({**MAXIMUM, **POLLERS}))


def test_a_switch_to_pollers_that_drops_the_maximum_concurrency_from_the_template_fails_the_update(
    aws: dict[str, Any],
) -> None:
    """CloudFormation leaves a property the template no longer names on the mapping: the maximum stays, and
    Lambda refuses the pollers beside it. Cleared first (an empty ScalingConfig), the same update goes through."""
    out = deploy(aws, mapping_template(MAXIMUM))
    with pytest.raises(Exception, match="maximum concurrency setting and provisioned mode"):
        deploy(aws, mapping_template(POLLERS), update=True)
    [mapping] = aws["lambda"].list_event_source_mappings(FunctionName=out["Fn"])["EventSourceMappings"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 50} and not mapping.get("ProvisionedPollerConfig")
    aws["lambda"].update_event_source_mapping(UUID=mapping["UUID"], ScalingConfig={})
    pollers = {"ProvisionedPollerConfig": {"MinimumPollers": 2, "MaximumPollers": 4}}
    deploy(aws, mapping_template(pollers), update=True)
    [mapping] = aws["lambda"].list_event_source_mappings(FunctionName=out["Fn"])["EventSourceMappings"]
    assert mapping["ProvisionedPollerConfig"] == pollers["ProvisionedPollerConfig"]
    assert not mapping.get("ScalingConfig", {}).get("MaximumConcurrency")


# ----------------------------------------------------------------------------- Lambda Managed Instances
def managed_instances_template(*, on_provider: bool = True, **function: Any) -> str:
    """A capacity provider and a function, on it (``on_provider``) or on demand, as the lambda-mi stack has them."""
    role = json.loads(lambda_template(permitted=False))["Resources"]["Role"]
    props: dict[str, Any] = {
        "Runtime": "python3.13",
        "Handler": "index.handler",
        "MemorySize": 2048,
        "Role": {"Fn::GetAtt": ["Role", "Arn"]},
        "Code": {"ZipFile": "def handler(event, context): return None"},
    }
    if on_provider:
        props["CapacityProviderConfig"] = {
            "LambdaManagedInstancesCapacityProviderConfig": {
                "CapacityProviderArn": {"Fn::GetAtt": ["Provider", "Arn"]},
                "PerExecutionEnvironmentMaxConcurrency": 5,
                "ExecutionEnvironmentMemoryGiBPerVCpu": 2,
            }
        }
    props.update(function)
    resources: dict[str, Any] = {
        "Role": role,
        "Provider": {
            "Type": "AWS::Lambda::CapacityProvider",
            "Properties": {
                "VpcConfig": {"SubnetIds": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]},
                "PermissionsConfig": {"CapacityProviderOperatorRoleArn": {"Fn::GetAtt": ["Role", "Arn"]}},
                "InstanceRequirements": {"Architectures": ["arm64"]},
                "CapacityProviderScalingConfig": {"MaxVCpuCount": 12},
            },
        },
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": props},
    }
    return json.dumps({"Resources": resources, "Outputs": {"Fn": {"Value": {"Ref": "Fn"}}}})


def test_a_function_deploys_on_a_capacity_provider_the_stack_creates(aws: dict[str, Any]) -> None:
    """moto alone skips AWS::Lambda::CapacityProvider and ignores the function's CapacityProviderConfig."""
    out = deploy(aws, managed_instances_template())
    assert aws["lambda"].get_function_configuration(FunctionName=out["Fn"])["MemorySize"] == 2048


@pytest.mark.parametrize(
    ("function", "refused"),
    [
        ({"MemorySize": 512}, "below the 2,048 MB minimum"),
        ({"Runtime": "python3.12"}, "Python 3.13 or later"),
        (
            {
                "CapacityProviderConfig": {
                    "LambdaManagedInstancesCapacityProviderConfig": {
                        "CapacityProviderArn": "arn:aws:lambda:us-east-1:123456789012:capacity-provider:none",
                    }
                }
            },
            "does not exist",
        ),
    ],
)
def test_lambda_refuses_a_managed_instances_function_it_cannot_run(
    aws: dict[str, Any], function: dict[str, Any], refused: str
) -> None:
    with pytest.raises(Exception, match=refused):
        deploy(aws, managed_instances_template(**function))


def test_a_capacity_provider_outside_its_schema_fails_the_deploy(aws: dict[str, Any]) -> None:
    body = json.loads(managed_instances_template(on_provider=False))
    body["Resources"]["Provider"]["Properties"]["CapacityProviderScalingConfig"]["MaxVCpuCount"] = 1
    with pytest.raises(Exception, match=r"MaxVCpuCount 1 not in 2\.\.15000"):
        deploy(aws, json.dumps(body))


@pytest.mark.parametrize("before", [False, True])
def test_an_existing_function_cannot_move_onto_or_off_a_capacity_provider(aws: dict[str, Any], before: bool) -> None:
    """GIVEN a function deployed on demand (or on a provider) WHEN an update adds (or removes) its capacity
    provider under the same logical id THEN the update fails: the lambda-mi worker is a new construct id."""
    deploy(aws, managed_instances_template(on_provider=before))
    with pytest.raises(Exception, match="cannot be added to or removed from an existing function"):
        deploy(aws, managed_instances_template(on_provider=not before), update=True)
