"""Fan-out: every consumer behind its own queue, tracking over WebSocket, and a data stack no consumer touches."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs

from app import build_app, new_app
from constructs_lib.fan_out import TopicConsumer
from tests.infra.conftest import VARIANTS, only, policy_actions, resources

TRACKED = ["payment_started", "payment_confirmed", "payment_failed"]


def subscriptions(t: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in resources(t, "AWS::SNS::Subscription").items()}


@pytest.mark.parametrize("name", ["lambda-sqs", "ecs"])
def test_each_consumer_subscribes_its_own_queue_with_a_filter_and_raw_delivery(variant, name):
    t = variant(name).service_json
    subs = subscriptions(t)
    by_filter = {tuple(s["FilterPolicy"]["event_type"]): s for s in subs.values()}
    assert set(by_filter) == {("order_placed",), tuple(TRACKED), ("payment_confirmed",)}
    assert all(s["Protocol"] == "sqs" and s["RawMessageDelivery"] is True for s in subs.values())
    assert all("RedrivePolicy" in s for s in subs.values())  # undeliverable messages are parked, not dropped
    # The consumers' own queues live beside them: encrypted, TLS-only, each with its DLQ; only the topic sends.
    queues = resources(t, "AWS::SQS::Queue")
    assert len(queues) == 4  # tracking + notifications, each a queue and its DLQ
    assert all(q["Properties"]["SqsManagedSseEnabled"] is True for q in queues.values())
    redriven = [q for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    assert len(redriven) == 2
    for policy in resources(t, "AWS::SQS::QueuePolicy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"]["Bool"]["aws:SecureTransport"] == "false" for s in statements
        )
        allows = [s for s in statements if s["Effect"] == "Allow"]
        assert allows and all(s["Principal"] == {"Service": "sns.amazonaws.com"} for s in allows)
        assert all(s["Action"] == "sqs:SendMessage" and "aws:SourceArn" in s["Condition"]["ArnEquals"] for s in allows)


def test_adding_a_consumer_is_one_construct_and_leaves_the_data_stack_unchanged(variant, tmp_path):
    baseline = variant("lambda-sqs").data_json
    # GIVEN the same app, WHEN one more consumer is added to the service stack
    app = new_app(outdir=str(tmp_path), **VARIANTS["lambda-sqs"])
    data, service = build_app(app)
    TopicConsumer(
        service,
        "Audit",
        topic=service.pipeline_data.topic,
        event_types=["payment_failed"],
        handler="orders.entrypoints.notifications.handler",
        description="an extra consumer",
        environment={},
        layer=service.layer,
        max_concurrency=2,
        reserved_concurrency=0,
        log_retention=logs.RetentionDays.ONE_WEEK,
        removal_policy=RemovalPolicy.DESTROY,
    )
    assembly = app.synth()
    after = json.loads((tmp_path / assembly.get_stack_by_name(data.stack_name).template_file).read_text())
    served = json.loads((tmp_path / assembly.get_stack_by_name(service.stack_name).template_file).read_text())
    # THEN the data stack's template is byte for byte what it was, and the service stack has the new subscription
    assert after == baseline
    assert ("payment_failed",) in {tuple(s["FilterPolicy"]["event_type"]) for s in subscriptions(served).values()}


def test_tracking_is_a_websocket_api_authorized_on_connect(variant):
    t = variant("lambda-sqs").service_json
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in resources(t, "AWS::ApiGatewayV2::Route", "Tracking").values()
    }
    assert set(routes) == {"$connect", "$disconnect", "$default", "track"}
    assert routes["$connect"]["AuthorizationType"] == "AWS_IAM"
    api = only(t, "AWS::ApiGatewayV2::Api", "TrackingApi")
    assert api["ProtocolType"] == "WEBSOCKET" and api["RouteSelectionExpression"] == "$request.body.action"
    stage = only(t, "AWS::ApiGatewayV2::Stage", "TrackingStage")
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == 100
    assert "DestinationArn" in stage["AccessLogSettings"]
    table = only(t, "AWS::DynamoDB::Table", "TrackingConnections")
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    # No index: an index is eventually consistent, and the pusher must see a registration made before its read
    assert "GlobalSecondaryIndexes" not in table
    # The pusher reads its own queue with partial batch failures, and may post to connections.
    esm = only(t, "AWS::Lambda::EventSourceMapping", "TrackingPusher")
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "execute-api:ManageConnections" in policy_actions(t, "TrackingPusher")
    assert "execute-api:ManageConnections" in policy_actions(t, "TrackingRouteFunction")
    assert not any(a == "*" or a.endswith(":*") for a in policy_actions(t, "TrackingPusher"))
    opened = variant("lambda-tuned").service_json
    connect = [
        r["Properties"]
        for r in resources(opened, "AWS::ApiGatewayV2::Route", "Tracking").values()
        if r["Properties"]["RouteKey"] == "$connect"
    ]
    assert connect[0].get("AuthorizationType", "NONE") == "NONE"


@pytest.mark.parametrize("name", ["lambda-sqs", "lambda-sns", "ecs"])
def test_every_variant_deploys_tracking_and_notifications(variant, name):
    t = variant(name).service_json
    handlers = {f["Properties"]["Handler"] for f in resources(t, "AWS::Lambda::Function").values()}
    assert {
        "orders.entrypoints.tracking.handler",
        "orders.entrypoints.tracking.push_handler",
        "orders.entrypoints.notifications.handler",
    } <= handlers
    assert {"TrackingUrl", "TrackingFunctionName", "TrackingPushFunctionName", "NotificationsFunctionName"} <= set(
        t["Outputs"]
    )
