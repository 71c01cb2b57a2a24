"""moto-backed AWS resources shaped like the data stack (topic, filtered queue + DLQ, tables)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orders import bootstrap
from sandbox.emulator.local_aws import create_order_resources

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


@pytest.fixture(autouse=True, scope="session")
def atomic_dynamodb_requests() -> None:
    """The emulator's fix, in process too: a worker thread's UpdateItem beside the test's GetItem raised
    inside moto, and two conditional puts could both succeed (sandbox/emulator/moto_fixes.py)."""
    from sandbox.emulator.moto_fixes import (
        fix_dynamodb_atomic_requests,
        fix_dynamodb_attribute_value_serialization,
        fix_dynamodb_transaction_copies,
        fix_dynamodb_update_expression_reuse,
    )

    fix_dynamodb_atomic_requests()
    fix_dynamodb_transaction_copies()
    fix_dynamodb_attribute_value_serialization()
    fix_dynamodb_update_expression_reuse()


@pytest.fixture
def aws(monkeypatch) -> Any:
    with mock_aws():
        sqs, sns, ddb = (boto3.client(s, region_name="us-east-1") for s in ("sqs", "sns", "dynamodb"))
        res = create_order_resources(sqs, sns, ddb, visibility_timeout_s=30, max_receive_count=MAX_RECEIVE_COUNT)
        for key, value in {
            **res.environment(),
            "PAYMENT_SLOTS": "5",
            "PAYMENT_LATENCY_MS": "10",
            "PAYMENT_FAILURE_RATE": "0",
            "QUEUE_VISIBILITY_TIMEOUT_S": "30",
        }.items():
            monkeypatch.setenv(key, value)
        bootstrap.reset()
        yield Aws(sqs=sqs, sns=sns, ddb=ddb, topic_arn=res.topic_arn, queue_url=res.queue_url, dlq_url=res.dlq_url)
        bootstrap.reset()
