"""The live stack's subscriptions follow a redeployed template without a gap (moto in-process)."""

from __future__ import annotations

import json
from typing import Any

import boto3
from moto import mock_aws

from sandbox.control import Subscriptions
from sandbox.deploy import Deployment


def deployment(topic: str, *queues: str) -> Deployment:
    subs = {
        f"Sub{n}": {
            "Type": "AWS::SNS::Subscription",
            "Properties": {
                "Protocol": "sqs",
                "TopicArn": topic,
                "Endpoint": arn,
                "RawMessageDelivery": True,
                "FilterPolicy": {"event_type": ["order_placed"]},
            },
        }
        for n, arn in enumerate(queues)
    }
    return Deployment(outputs={"X-data": {}, "X-service": {}}, templates={"X-service": {"Resources": subs}})


def received(sqs: Any, url: str) -> list[str]:
    return [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])]


@mock_aws
def test_a_redeploy_subscribes_the_new_consumer_before_it_drops_the_old() -> None:
    sns, sqs = boto3.client("sns", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
    topic = sns.create_topic(Name="events")["TopicArn"]
    urls = [sqs.create_queue(QueueName=n)["QueueUrl"] for n in ("old", "new")]
    arns = [sqs.get_queue_attributes(QueueUrl=u, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"] for u in urls]
    subs = Subscriptions(sns, sqs)
    # GIVEN the first deployment's subscription
    subs.reconcile(deployment(topic, arns[0]))
    subs.reconcile(deployment(topic, arns[0]))  # adopting the same template again changes nothing
    assert len(sns.list_subscriptions()["Subscriptions"]) == 1
    calls: list[str] = []
    for name in ("subscribe", "unsubscribe"):
        original = getattr(sns, name)
        setattr(sns, name, lambda *a, _o=original, _n=name, **kw: (calls.append(_n), _o(*a, **kw))[1])
    # WHEN a redeploy moves the subscription to another queue
    subs.reconcile(deployment(topic, arns[1]))
    # THEN the new one exists before the old one goes, and events reach only the new queue, filtered and raw
    assert calls == ["subscribe", "unsubscribe"]
    [only] = sns.list_subscriptions()["Subscriptions"]
    assert only["Endpoint"] == arns[1]
    body = json.dumps({"event_type": "order_placed", "order_id": "o-1"})
    sns.publish(
        TopicArn=topic,
        Message=body,
        MessageAttributes={"event_type": {"DataType": "String", "StringValue": "order_placed"}},
    )
    sns.publish(
        TopicArn=topic,
        Message="{}",
        MessageAttributes={"event_type": {"DataType": "String", "StringValue": "payment_confirmed"}},
    )
    assert received(sqs, urls[1]) == [body]
    assert received(sqs, urls[0]) == []
