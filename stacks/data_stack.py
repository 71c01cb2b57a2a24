"""Stateful resources: topic, work queue + DLQ, tables. Identical whichever compute runs."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from constructs import Construct

from constructs_lib.event_topic import EventTopic
from constructs_lib.order_tables import OrderTables
from constructs_lib.work_queue import WorkQueue
from planner.config import AppConfig
from stacks import outputs


class DataStack(Stack):
    """Attributes: ``events`` (EventTopic), ``work`` (WorkQueue), ``tables`` (OrderTables).

    Every attribute a consumer may reference is exported explicitly, so the
    exports (and so this template) do not change when ``compute`` does.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs: object) -> None:
        super().__init__(scope, construct_id, termination_protection=config.retain_data, **kwargs)  # type: ignore[arg-type]
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
        self.events = EventTopic(self, "OrderEvents", removal_policy=removal)
        self.work = WorkQueue(
            self,
            "Orders",
            visibility_timeout=Duration.seconds(config.visibility_timeout_s),
            max_receive_count=config.max_receive_count,
            retention=Duration.days(config.queue_retention_days),
            removal_policy=removal,
        )
        self.work.accept_from(self.events.topic)
        self.work.accept_dead_letters_from(self.events.topic)
        self.tables = OrderTables(self, "Tables", removal_policy=removal)

        for value in (
            self.events.topic.topic_arn,
            self.events.topic.topic_name,
            self.events.key.key_arn,
            self.work.queue.queue_arn,
            self.work.queue.queue_url,
            self.work.queue.queue_name,
            self.work.dlq.queue_arn,
            self.work.dlq.queue_url,
            self.work.dlq.queue_name,
            self.tables.orders.table_name,
            self.tables.orders.table_arn,
            self.tables.idempotency.table_name,
            self.tables.idempotency.table_arn,
            self.tables.catalog.table_name,
            self.tables.catalog.table_arn,
        ):
            self.export_value(value)
        # What an operator reads (README, docs/deploying.md) and `make smoke` / `make redrive` find by name.
        for name, value, description in (
            (outputs.ORDER_EVENTS_TOPIC_ARN, self.events.topic.topic_arn, "The order events topic"),
            (outputs.ORDERS_QUEUE_URL, self.work.queue.queue_url, "The orders queue the workers read"),
            (outputs.ORDERS_DLQ_URL, self.work.dlq.queue_url, "The orders dead-letter queue (make redrive)"),
            (outputs.ORDERS_TABLE_NAME, self.tables.orders.table_name, "The orders read model"),
            (outputs.CATALOG_TABLE_NAME, self.tables.catalog.table_name, "Products and stock (make catalog)"),
            (outputs.STOCK_SHARDS, str(config.stock_shards), "Stock items per SKU that make catalog writes"),
        ):
            CfnOutput(self, name, value=value, description=description)
