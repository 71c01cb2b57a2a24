"""Lambda workers with reserved concurrency, fed by the queue (default) or straight from the topic."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from constructs_lib.fan_out import WORKER_EVENTS, event_type_filter
from constructs_lib.order_runtime import (
    LAMBDA_WORKER_SERVICE,
    PipelineData,
    grant_worker,
    records_failed,
    runtime_function,
)
from constructs_lib.pipeline_monitoring import WorkerSignals
from planner.config import INVOKES_PER_POLLER

# What drains the orders queue when the topic invokes the function directly (trigger sns): only what an
# earlier variant left there, or a redrive sends back; the least Lambda allows.
DRAIN_CONCURRENCY = 2


class LambdaWorkers(Construct):
    """Attributes: ``function``, ``trigger`` ("sqs" | "sns"), ``event_source`` (the orders queue's mapping),
    ``subscription`` (sns only: the function's own; the queue's subscription is the stack's ``workers_inbox``).

    sqs: an event source mapping with partial batch failures and a max
    concurrency no higher than the reserved concurrency, so the mapping never
    throttles itself; the queue's redrive policy dead-letters poison messages.
    ``pollers`` (min, max): provisioned mode, the mapping's pollers instead of its maximum concurrency.
    sns: a direct subscription; Lambda's async invoke retries, then the
    on-failure destination (the DLQ); SNS delivery failures go to the same DLQ.
    The orders queue keeps its mapping (at DRAIN_CONCURRENCY) so that a switch from sqs or ecs never
    strands what is in it; the mapping keeps its construct id, so the switch updates it in place (Lambda
    refuses a second mapping of one function to one queue, which a new logical id would create first).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data: PipelineData,
        environment: dict[str, str],
        layer: lambda_.ILayerVersion,
        trigger: str,
        memory_mb: int,
        timeout: Duration,
        reserved_concurrency: int,
        max_concurrency: int,
        pollers: tuple[int, int] | None = None,
        batch_size: int,
        batch_window: Duration,
        retry_attempts: int,
        max_event_age: Duration,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.trigger = trigger
        self.logs = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=removal_policy)
        async_options: dict[str, object] = {}
        # The most environments that can run: the mapping's maxConcurrency (sqs) or the reserved concurrency.
        if trigger == "sqs":
            # Provisioned pollers drive up to INVOKES_PER_POLLER invokes each; the mapping has no maximum then.
            mapped = pollers[1] * INVOKES_PER_POLLER if pollers else max_concurrency
            self.concurrency_cap = min(mapped, reserved_concurrency) if reserved_concurrency else mapped
        else:
            self.concurrency_cap = reserved_concurrency  # 0: no cap but the account's
        if trigger == "sns":
            async_options = {
                "retry_attempts": retry_attempts,
                "max_event_age": max_event_age,
                "on_failure": destinations.SqsDestination(data.dlq),
            }
        self.function = runtime_function(
            self,
            "Function",
            handler="orders.entrypoints.worker_lambda.handler",
            description=f"Order payment worker ({trigger} trigger)",
            environment=environment,
            layer=layer,
            log_group=self.logs,
            memory_mb=memory_mb,
            timeout=timeout,
            reserved_concurrent_executions=reserved_concurrency or None,
            **async_options,
        )
        grant_worker(data, self.function, poll_queue=False)

        provisioned = trigger == "sqs" and pollers is not None
        self.event_source = sources.SqsEventSource(
            data.queue,
            batch_size=batch_size,
            # Always rendered: a window removed from the template on a switch to sns would be left on the mapping.
            max_batching_window=batch_window if trigger == "sqs" else Duration.seconds(0),
            # AWS refuses a maximum concurrency beside provisioned pollers: one or the other.
            max_concurrency=None if provisioned else (max_concurrency if trigger == "sqs" else DRAIN_CONCURRENCY),
            provisioned_poller_config=lambda_.ProvisionedPollerConfig(
                minimum_pollers=pollers[0], maximum_pollers=pollers[1]
            )
            if provisioned and pollers
            else None,
            report_batch_item_failures=True,
        )
        self.function.add_event_source(self.event_source)
        self.subscription: sns.Subscription | None = None
        if trigger == "sns":
            self.function.add_permission(
                "AllowTopicInvoke",
                principal=iam.ServicePrincipal("sns.amazonaws.com"),
                source_arn=data.topic.topic_arn,
            )
            self.subscription = sns.Subscription(
                self,
                "FunctionSubscription",
                topic=data.topic,
                protocol=sns.SubscriptionProtocol.LAMBDA,
                endpoint=self.function.function_arn,
                filter_policy=event_type_filter(WORKER_EVENTS),
                dead_letter_queue=data.dlq,
            )

    def signals(self) -> WorkerSignals:
        minute = Duration.minutes(1)
        concurrent = self.function.metric("ConcurrentExecutions", statistic="Maximum", period=minute)
        if not self.concurrency_cap:  # unreserved async invokes: the account's pool is the cap, throttles show it
            return WorkerSignals(
                errors=records_failed(LAMBDA_WORKER_SERVICE),
                saturation=self.function.metric_throttles(statistic="Sum", period=minute),
                saturation_threshold=1,
                saturation_description="The worker is throttled: the account's unreserved concurrency is used up",
                workers=concurrent,
                workers_label="Concurrent executions",
            )
        return WorkerSignals(
            # Partial batch failures are no function error: the worker counts failed records itself.
            errors=records_failed(LAMBDA_WORKER_SERVICE),
            # Throttles cannot fire while the mapping's maxConcurrency <= reserved: watch the cap itself.
            saturation=concurrent,
            saturation_threshold=self.concurrency_cap,
            saturation_description=f"The worker runs at its concurrency cap ({self.concurrency_cap}): "
            "the backlog may outgrow it",
            workers=concurrent,
            workers_label="Concurrent executions",
        )
