"""The example consumer: a payment-confirmed e-mail per order (logged), behind its own queue."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from constructs_lib.fan_out import TopicConsumer
from constructs_lib.order_runtime import PipelineData


class OrderNotifications(Construct):
    """Attributes: ``consumer`` (TopicConsumer of payment_confirmed)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data: PipelineData,
        environment: dict[str, str],
        layer: lambda_.ILayerVersion,
        max_concurrency: int,
        reserved_concurrency: int,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.consumer = TopicConsumer(
            self,
            "Consumer",
            topic=data.topic,
            event_types=["payment_confirmed"],
            handler="orders.entrypoints.notifications.handler",
            description="Example consumer: the payment-confirmed e-mail, once per order",
            environment=environment,
            layer=layer,
            max_concurrency=max_concurrency,
            reserved_concurrency=reserved_concurrency,
            log_retention=log_retention,
            removal_policy=removal_policy,
        )
        # Powertools idempotency records of the e-mails sent (the data stack's idempotency table).
        data.idempotency_table.grant(
            self.consumer.function,
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        )
