"""moto-backed AWS resources shaped like the data stack (topic, filtered queue + DLQ, tables)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orders import bootstrap

MAX_RECEIVE_COUNT = 3


@dataclass
class Aws:
    sqs: Any
    sns: Any
    ddb: Any
    topic_arn: str
    queue_url: str
    dlq_url: str

    def queue_messages(self, url: str | None = None, *, wait: int = 0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(
                QueueUrl=url or self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait, VisibilityTimeout=0
            ).get("Messages", [])
            fresh = [m for m in got if m["MessageId"] not in {o["MessageId"] for o in out}]
            if not fresh:
                return out
            out += fresh

    def depth(self, url: str | None = None) -> tuple[int, int]:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def order(self, order_id: str) -> dict[str, Any] | None:
        item = self.ddb.get_item(TableName="orders", Key={"order_id": {"S": order_id}}).get("Item")
        return {k: next(iter(v.values())) for k, v in item.items()} if item else None


@pytest.fixture
def aws(monkeypatch) -> Any:
    with mock_aws():
        sqs, sns, ddb = (boto3.client(s, region_name="us-east-1") for s in ("sqs", "sns", "dynamodb"))
        topic_arn = sns.create_topic(Name="order-events")["TopicArn"]
        dlq_url = sqs.create_queue(QueueName="orders-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        queue_url = sqs.create_queue(
            QueueName="orders",
            Attributes={
                "VisibilityTimeout": "30",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}),
            },
        )["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true", "FilterPolicy": json.dumps({"event_type": ["order_placed"]})},
        )
        ddb.create_table(
            TableName="orders",
            KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.create_table(
            TableName="idempotency",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for key, value in {
            "ORDER_EVENTS_TOPIC_ARN": topic_arn,
            "ORDERS_QUEUE_URL": queue_url,
            "ORDERS_TABLE_NAME": "orders",
            "IDEMPOTENCY_TABLE_NAME": "idempotency",
            "PAYMENT_SLOTS": "5",
            "PAYMENT_LATENCY_MS": "10",
            "PAYMENT_FAILURE_RATE": "0",
            "QUEUE_VISIBILITY_TIMEOUT_S": "30",
        }.items():
            monkeypatch.setenv(key, value)
        bootstrap.reset()
        yield Aws(sqs=sqs, sns=sns, ddb=ddb, topic_arn=topic_arn, queue_url=queue_url, dlq_url=dlq_url)
        bootstrap.reset()
