"""Fan-out: one consumer of the order-events topic behind its own queue.

``TopicSubscriberQueue`` subscribes a queue to the topic with a filter policy on ``event_type`` and
raw delivery; the queue is the consumer's own (encrypted, TLS-only, with a DLQ: ``WorkQueue``), or an
existing one (the orders queue, which lives in the data stack so that switching ``compute`` never
replaces it). ``TopicConsumer`` adds a Lambda function reading that queue with partial batch
failures. Adding a consumer is one ``TopicConsumer`` in the service stack: the topic is imported
there, so its stack, the publisher and every other consumer are untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from constructs_lib.order_runtime import PipelineData, runtime_function
from constructs_lib.work_queue import WorkQueue


def event_type_filter(event_types: Sequence[str]) -> dict[str, sns.SubscriptionFilter]:
    return {"event_type": sns.SubscriptionFilter.string_filter(allowlist=list(event_types))}


class TopicSubscriberQueue(Construct):
    """Attributes: ``queue``, ``dlq``, ``subscription``, ``event_types``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topic: sns.ITopic,
        event_types: Sequence[str],
        removal_policy: RemovalPolicy,
        visibility_timeout: Duration = Duration.seconds(60),
        max_receive_count: int = 5,
        retention: Duration = Duration.days(4),
        existing: tuple[sqs.IQueue, sqs.IQueue] | None = None,
    ) -> None:
        """``existing``: (queue, dlq) that already let the topic send (the data stack's orders queue)."""
        super().__init__(scope, construct_id)
        if not event_types:
            raise ValueError("a subscriber names the event types it consumes")
        self.event_types = tuple(event_types)
        if existing is None:
            own = WorkQueue(
                self,
                "Queue",
                visibility_timeout=visibility_timeout,
                max_receive_count=max_receive_count,
                retention=retention,
                removal_policy=removal_policy,
            )
            own.accept_from(topic)
            own.accept_dead_letters_from(topic)
            self.queue: sqs.IQueue = own.queue
            self.dlq: sqs.IQueue = own.dlq
        else:
            self.queue, self.dlq = existing
        # Undeliverable messages (queue policy or KMS errors) are parked in the DLQ, not dropped.
        self.subscription = sns.Subscription(
            self,
            "Subscription",
            topic=topic,
            protocol=sns.SubscriptionProtocol.SQS,
            endpoint=self.queue.queue_arn,
            raw_message_delivery=True,
            filter_policy=event_type_filter(self.event_types),
            dead_letter_queue=self.dlq,
        )


WORKER_EVENTS = ("order_placed",)  # what the payment workers act on; other event types are for other consumers


def workers_inbox(
    scope: Construct, construct_id: str, *, data: PipelineData, removal_policy: RemovalPolicy
) -> TopicSubscriberQueue:
    """The payment workers' subscription: the data stack's orders queue, fed order_placed (either compute)."""
    return TopicSubscriberQueue(
        scope,
        construct_id,
        topic=data.topic,
        event_types=WORKER_EVENTS,
        existing=(data.queue, data.dlq),
        removal_policy=removal_policy,
    )


class TopicConsumer(Construct):
    """A Lambda consumer of some event types, behind its own queue. Attributes: ``inbox`` (the
    TopicSubscriberQueue), ``function``, ``logs``, ``dead_letters`` (the alarm on its DLQ)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topic: sns.ITopic,
        event_types: Sequence[str],
        handler: str,
        description: str,
        environment: dict[str, str],
        layer: lambda_.ILayerVersion,
        max_concurrency: int,
        reserved_concurrency: int,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        timeout: Duration = Duration.seconds(30),
        memory_mb: int = 256,
        batch_size: int = 10,
    ) -> None:
        """``max_concurrency``: the mapping's cap; ``reserved_concurrency``: 0 leaves the function unreserved
        (nothing guaranteed, nothing taken from the account), more also lowers the cap to the reserve."""
        super().__init__(scope, construct_id)
        if reserved_concurrency:
            max_concurrency = min(max_concurrency, reserved_concurrency)
        if max_concurrency < 2:
            raise ValueError("an SQS event source needs a maximum concurrency of at least 2")
        self.inbox = TopicSubscriberQueue(
            self,
            "Inbox",
            topic=topic,
            event_types=event_types,
            removal_policy=removal_policy,
            visibility_timeout=Duration.seconds(timeout.to_seconds() * 6),  # Lambda's rule for SQS sources
        )
        self.logs = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=removal_policy)
        self.function = runtime_function(
            self,
            "Function",
            handler=handler,
            description=description,
            environment=environment,
            layer=layer,
            log_group=self.logs,
            memory_mb=memory_mb,
            timeout=timeout,
            reserved_concurrent_executions=reserved_concurrency or None,
        )
        # What this consumer could not handle waits in its own DLQ: watched from the start, so adding a
        # consumer cannot add a silent one (PipelineMonitoring sends it to the alarm topic).
        self.dead_letters = cloudwatch.Alarm(
            self,
            "DeadLetters",
            metric=self.inbox.dlq.metric_approximate_number_of_messages_visible(
                statistic="Maximum", period=Duration.minutes(1)
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{description}: events reached its dead-letter queue; inspect and redrive",
        )
        self.function.add_event_source(
            sources.SqsEventSource(
                self.inbox.queue,
                batch_size=batch_size,
                max_concurrency=max_concurrency,  # never above a reserve: the mapping never throttles itself
                report_batch_item_failures=True,
            )
        )
