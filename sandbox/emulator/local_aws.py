"""Order-pipeline resources on moto, shaped like the data stack, for tests and benches.

The sandbox deploys the real stacks; tests and benches that only need the
resources (and must not pay for a CDK deploy) create them here, once.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ORDER_PLACED_FILTER = json.dumps({"event_type": ["order_placed"]})
# What the tests and benches order (its SKUs and prices); a sandbox sale loads sandbox/catalogs/.
TEST_CATALOG = Path(__file__).resolve().parents[2] / "tests" / "events" / "catalog.json"


def test_catalog_rows(shards: int = 1) -> list[Any]:
    """TEST_CATALOG's rows, for in-memory services (orders.adapters.memory.InMemoryCatalog)."""
    from orders.domain.catalog import parse_catalog

    return parse_catalog(TEST_CATALOG.read_bytes(), shards=shards)


@contextmanager
def moto_server() -> Iterator[str]:
    """moto server on a free loopback port, from empty state; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    endpoint = f"http://localhost:{port}"
    # moto keeps state per process, across server instances: start from empty.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).read()
    try:
        yield endpoint
    finally:
        server.stop()


@dataclass
class OrderResources:
    topic_arn: str
    queue_url: str
    dlq_url: str
    orders_table: str = "orders"
    idempotency_table: str = "idempotency"
    catalog_table: str = "catalog"

    def environment(self) -> dict[str, str]:
        """The runtime's environment contract for these resources."""
        return {
            "ORDER_EVENTS_TOPIC_ARN": self.topic_arn,
            "ORDERS_QUEUE_URL": self.queue_url,
            "ORDERS_TABLE_NAME": self.orders_table,
            "IDEMPOTENCY_TABLE_NAME": self.idempotency_table,
            "CATALOG_TABLE_NAME": self.catalog_table,
            "CATALOG_CACHE_S": "0",  # tests change stock and prices between requests
        }


def allow_topic_to_send(sqs: Any, *, queue_url: str, queue_arn: str, topic_arn: str) -> None:
    """As the data stack's WorkQueue.accept_from: SNS delivers only to a queue whose policy lets the topic send."""
    allow_topic = {
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
    }
    policy = json.dumps({"Version": "2012-10-17", "Statement": [allow_topic]})
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": policy})


def create_order_resources(
    sqs: Any,
    sns: Any,
    ddb: Any,
    *,
    visibility_timeout_s: int = 30,
    max_receive_count: int = 3,
    catalog: Path | None = TEST_CATALOG,
    stock_shards: int = 1,
) -> OrderResources:
    """Topic, queue (+DLQ, redrive, a policy letting the topic send) subscribed to order_placed with raw
    delivery, the tables, and ``catalog`` loaded over ``stock_shards`` shards."""
    topic_arn = sns.create_topic(Name="order-events")["TopicArn"]
    dlq_url = sqs.create_queue(QueueName="orders-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName="orders",
        Attributes={
            "VisibilityTimeout": str(visibility_timeout_s),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    allow_topic_to_send(sqs, queue_url=queue_url, queue_arn=queue_arn, topic_arn=topic_arn)
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true", "FilterPolicy": ORDER_PLACED_FILTER},
    )
    resources = OrderResources(topic_arn=topic_arn, queue_url=queue_url, dlq_url=dlq_url)
    from orders.adapters.dynamodb import PENDING_INDEX, PENDING_KEY

    # The orders table as constructs_lib/order_tables.py declares it: its sparse index of pending orders.
    ddb.create_table(
        TableName=resources.orders_table,
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("order_id", PENDING_KEY, "updated_at")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": PENDING_INDEX,
                "KeySchema": [
                    {"AttributeName": PENDING_KEY, "KeyType": "HASH"},
                    {"AttributeName": "updated_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.create_table(
        TableName=resources.idempotency_table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.create_table(
        TableName=resources.catalog_table,
        KeySchema=[{"AttributeName": "sku", "KeyType": "HASH"}, {"AttributeName": "part", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("sku", "part")],
        BillingMode="PAY_PER_REQUEST",
    )
    if catalog is not None:
        from orders.adapters.catalog import load
        from orders.domain.catalog import parse_catalog

        load(ddb, resources.catalog_table, parse_catalog(catalog.read_bytes(), shards=stock_shards))
    return resources


def create_connections_table(ddb: Any, name: str = "connections") -> str:
    """The tracking connections table as constructs_lib/order_tracking.py declares it (keys, no index)."""
    ddb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "connection_id", "KeyType": "HASH"},
            {"AttributeName": "target", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "connection_id", "AttributeType": "S"},
            {"AttributeName": "target", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name
