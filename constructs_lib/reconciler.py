"""The reconciler: every minute, orders left non-terminal too long are resolved (orders.entrypoints.reconciler)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from constructs import Construct

from constructs_lib.order_runtime import PipelineData, grant_reconciler, runtime_function

SCHEDULE = Duration.minutes(1)


class OrderReconciler(Construct):
    """Attributes: ``function``, ``logs``, ``schedule`` (EventBridge Scheduler, every minute) and ``stuck``
    (an alarm: the reconciler found orders stuck, whatever it then did with them)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data: PipelineData,
        environment: dict[str, str],
        layer: lambda_.ILayerVersion,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.logs = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=removal_policy)
        self.function = runtime_function(
            self,
            "Function",
            handler="orders.entrypoints.reconciler.handler",
            description="Resolves orders left PLACED or PAYING too long: adopt the charge, or hand back",
            environment=environment,
            layer=layer,
            log_group=self.logs,
            memory_mb=256,
            timeout=Duration.seconds(55),  # done before the next run starts
        )
        grant_reconciler(data, self.function)
        # A missed run is made up by the next one a minute later: no retries, no stale runs.
        self.schedule = scheduler.Schedule(
            self,
            "EveryMinute",
            schedule=scheduler.ScheduleExpression.rate(SCHEDULE),
            target=targets.LambdaInvoke(self.function, retry_attempts=0, max_event_age=Duration.minutes(1)),
            description="Run the order reconciler",
        )
        self.stuck = cloudwatch.Alarm(
            self,
            "StuckOrders",
            metric=cloudwatch.Metric(
                namespace="FlashSaleOrders",
                metric_name="StuckOrdersFound",
                dimensions_map={"service": "orders-reconciler"},
                statistic="Sum",
                period=Duration.minutes(5),
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="Orders were left non-terminal longer than reconcileAfterSeconds (see docs/checkout.md)",
        )
