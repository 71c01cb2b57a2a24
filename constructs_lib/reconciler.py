"""The reconciler: every minute, orders left non-terminal too long are resolved (orders.entrypoints.reconciler)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from constructs import Construct

from constructs_lib.nag import acknowledge
from constructs_lib.order_runtime import PipelineData, grant_reconciler, runtime_function
from constructs_lib.order_tables import PENDING_INDEX

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
        grant_reconciler(data, self.function, index_name=PENDING_INDEX)
        # Its own role (not the stack-wide one the target would make), so what it may do is stated here.
        self.scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            ),
        )
        # A missed run is made up by the next one a minute later: no retries, no stale runs.
        self.schedule = scheduler.Schedule(
            self,
            "EveryMinute",
            schedule=scheduler.ScheduleExpression.rate(SCHEDULE),
            target=targets.LambdaInvoke(
                self.function, role=self.scheduler_role, retry_attempts=0, max_event_age=Duration.minutes(1)
            ),
            description="Run the order reconciler",
        )
        acknowledge(
            self.scheduler_role,
            "AwsSolutions-IAM5[Resource::<ReconcilerFunction0432B6FF.Arn>:*]",
            "grant_invoke covers this one function's versions and aliases; the schedule invokes $LATEST only",
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
