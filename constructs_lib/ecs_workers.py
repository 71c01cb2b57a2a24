"""ECS Fargate queue workers, autoscaled on backlog per task.

Better than ``QueueProcessingFargateService``'s fixed steps on visible messages:

* target tracking on (visible + in-flight) / running tasks: capacity follows
  the backlog each task must work off, and in-flight messages keep busy tasks
  counted, so scale-in does not start while work is held;
* a wake step that, when messages are visible and none run, sets the task
  count the backlog implies (target tracking alone cannot leave zero, and
  waking one task and waiting for tracking costs the flash sale's first minutes);
* tasks protect themselves from scale-in while they hold messages (ECS task
  scale-in protection), and on SIGTERM finish or release what they hold.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from constructs_lib.nag import acknowledge
from constructs_lib.order_runtime import (
    ECS_WORKER_SERVICE,
    PYTHON_VERSION,
    RUNTIME_DIR,
    PipelineData,
    grant_worker,
    records_failed,
    subscribe_order_queue,
)
from constructs_lib.pipeline_monitoring import WorkerSignals
from planner.policy import wake_steps

_TT = appscaling.CfnScalingPolicy


def _sqs_metric(query_id: str, queue_name: str, metric_name: str) -> _TT.TargetTrackingMetricDataQueryProperty:
    return _TT.TargetTrackingMetricDataQueryProperty(
        id=query_id,
        return_data=False,
        metric_stat=_TT.TargetTrackingMetricStatProperty(
            stat="Maximum",
            metric=_TT.TargetTrackingMetricProperty(
                namespace="AWS/SQS",
                metric_name=metric_name,
                dimensions=[_TT.TargetTrackingMetricDimensionProperty(name="QueueName", value=queue_name)],
            ),
        ),
    )


class EcsQueueWorkers(Construct):
    """Attributes: ``vpc``, ``cluster``, ``task_definition``, ``container``, ``service``,
    ``scalable_target``, ``backlog_policy``, ``wake_alarm``, ``logs``, ``running_tasks`` (metric).
    """

    BACKLOG_EXPRESSION = "(visible + inflight) / IF(FILL(running, 0) > 0, FILL(running, 0), 1)"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data: PipelineData,
        environment: dict[str, str],
        image_uri: str,
        worker_concurrency: int,
        cpu: int,
        memory_mb: int,
        spot: bool,
        min_tasks: int,
        max_tasks: int,
        backlog_per_task_target: int,
        wake_queue_depth: int,
        scale_out_cooldown: Duration,
        scale_in_cooldown: Duration,
        stop_timeout: Duration,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)

        # Public subnets, no NAT gateway, no inbound rules: tasks only call AWS APIs out.
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=0,
            restrict_default_security_group=False,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24)
            ],
        )
        flow_logs = logs.LogGroup(self, "FlowLogs", retention=log_retention, removal_policy=removal_policy)
        self.vpc.add_flow_log(
            "RejectedTraffic",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        self.security_group = ec2.SecurityGroup(
            self, "TaskSecurityGroup", vpc=self.vpc, description="Order workers: no inbound", allow_all_outbound=True
        )

        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=self.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
            enable_fargate_capacity_providers=True,
        )
        self.logs = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=removal_policy)
        self.max_tasks = max_tasks
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            cpu=cpu,
            memory_limit_mib=memory_mb,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        image = (
            ecs.ContainerImage.from_registry(image_uri)
            if image_uri
            else ecs.ContainerImage.from_asset(
                str(RUNTIME_DIR),
                platform=ecr_assets.Platform.LINUX_AMD64,
                build_args={"PYTHON_VERSION": PYTHON_VERSION},
            )
        )
        self.container = self.task_definition.add_container(
            "worker",
            image=image,
            command=["python", "-m", "orders.entrypoints.worker_ecs"],
            environment={
                **environment,
                "WORKER_CONCURRENCY": str(worker_concurrency),
                "WORKER_STOP_TIMEOUT_S": str(max(5, int(stop_timeout.to_seconds()) - 5)),
                "ECS_TASK_PROTECTION": "true",
            },
            logging=ecs.LogDrivers.aws_logs(stream_prefix="worker", log_group=self.logs),
            stop_timeout=stop_timeout,
            readonly_root_filesystem=True,
        )
        grant_worker(data, self.task_definition.task_role, poll_queue=True)
        # Task scale-in protection through the ECS agent endpoint (this task only, in this cluster).
        self.task_definition.task_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ecs:GetTaskProtection", "ecs:UpdateTaskProtection"],
                resources=[
                    stack.format_arn(service="ecs", resource="task", resource_name=f"{self.cluster.cluster_name}/*")
                ],
            )
        )

        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            assign_public_ip=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_groups=[self.security_group],
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            capacity_provider_strategies=[
                ecs.CapacityProviderStrategy(capacity_provider="FARGATE_SPOT" if spot else "FARGATE", weight=1)
            ],
        )
        self.subscription = subscribe_order_queue(self, "QueueSubscription", data)

        self.scalable_target = appscaling.ScalableTarget(
            self,
            "ScalableTarget",
            service_namespace=appscaling.ServiceNamespace.ECS,
            resource_id=f"service/{self.cluster.cluster_name}/{self.service.service_name}",
            scalable_dimension="ecs:service:DesiredCount",
            min_capacity=min_tasks,
            max_capacity=max_tasks,
        )
        queue_name = data.queue.queue_name
        self.running_tasks = cloudwatch.Metric(
            namespace="ECS/ContainerInsights",
            metric_name="RunningTaskCount",
            dimensions_map={"ClusterName": self.cluster.cluster_name, "ServiceName": self.service.service_name},
            statistic="Average",
            period=Duration.minutes(1),
        )
        self.backlog_policy = _TT(
            self,
            "BacklogPerTaskTracking",
            policy_name=f"{stack.stack_name}-backlog-per-task",
            policy_type="TargetTrackingScaling",
            scaling_target_id=self.scalable_target.scalable_target_id,
            target_tracking_scaling_policy_configuration=_TT.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=backlog_per_task_target,
                scale_out_cooldown=int(scale_out_cooldown.to_seconds()),
                scale_in_cooldown=int(scale_in_cooldown.to_seconds()),
                customized_metric_specification=_TT.CustomizedMetricSpecificationProperty(
                    metrics=[
                        _sqs_metric("visible", queue_name, "ApproximateNumberOfMessagesVisible"),
                        _sqs_metric("inflight", queue_name, "ApproximateNumberOfMessagesNotVisible"),
                        _TT.TargetTrackingMetricDataQueryProperty(
                            id="running",
                            return_data=False,
                            metric_stat=_TT.TargetTrackingMetricStatProperty(
                                stat="Average",
                                metric=_TT.TargetTrackingMetricProperty(
                                    namespace="ECS/ContainerInsights",
                                    metric_name="RunningTaskCount",
                                    dimensions=[
                                        _TT.TargetTrackingMetricDimensionProperty(
                                            name="ClusterName", value=self.cluster.cluster_name
                                        ),
                                        _TT.TargetTrackingMetricDimensionProperty(
                                            name="ServiceName", value=self.service.service_name
                                        ),
                                    ],
                                ),
                            ),
                        ),
                        _TT.TargetTrackingMetricDataQueryProperty(
                            id="backlog_per_task",
                            label="Backlog per running task",
                            expression=self.BACKLOG_EXPRESSION,
                            return_data=True,
                        ),
                    ]
                ),
            ),
        )

        visible = data.queue.metric_approximate_number_of_messages_visible(
            statistic="Maximum", period=Duration.minutes(1)
        )
        self.wake_alarm = cloudwatch.Alarm(
            self,
            "WakeFromZero",
            alarm_description=f"{wake_queue_depth}+ messages visible and no task running: start the tasks they imply",
            metric=cloudwatch.MathExpression(
                expression="IF(FILL(running, 0) == 0, visible, 0)",
                using_metrics={"running": self.running_tasks, "visible": visible},
                period=Duration.minutes(1),
                label="Visible messages while no task runs",
            ),
            threshold=wake_queue_depth,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.wake_action = appscaling.StepScalingAction(
            self,
            "WakeAction",
            scaling_target=self.scalable_target,
            adjustment_type=appscaling.AdjustmentType.EXACT_CAPACITY,
            metric_aggregation_type=appscaling.MetricAggregationType.MAXIMUM,
            cooldown=scale_out_cooldown,
        )
        # Step bounds are relative to the alarm threshold.
        for lowest, above, tasks in wake_steps(
            min_tasks=min_tasks, max_tasks=max_tasks, target=backlog_per_task_target, wake_depth=wake_queue_depth
        ):
            self.wake_action.add_adjustment(
                adjustment=tasks,
                lower_bound=lowest - wake_queue_depth,
                upper_bound=None if above is None else above - wake_queue_depth,
            )
        self.wake_alarm.add_alarm_action(cw_actions.ApplicationScalingAction(self.wake_action))

        cluster_id = stack.resolve(stack.get_logical_id(self.cluster.node.default_child))  # type: ignore[arg-type]
        acknowledge(
            self.task_definition.task_role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:task/<{cluster_id}>/*]",
            "Task ARNs are only known at run time; the grant covers this cluster's tasks and only task protection.",
        )
        if self.task_definition.execution_role is not None:
            acknowledge(
                self.task_definition.execution_role,
                "AwsSolutions-IAM5[Resource::*]",
                "ecr:GetAuthorizationToken supports no resource-level permissions; image pulls are scoped to the repo.",
            )
        acknowledge(
            self.task_definition,
            "AwsSolutions-ECS2",
            "The environment holds only resource names and tuning values, never secrets.",
        )

    def signals(self) -> WorkerSignals:
        return WorkerSignals(
            errors=records_failed(ECS_WORKER_SERVICE),  # Powertools (EMF) metrics from the worker's stdout
            saturation=self.running_tasks,
            saturation_threshold=self.max_tasks,
            saturation_description="The service runs at maxTasks: the backlog may outgrow the workers",
            workers=self.running_tasks,
            workers_label="Running worker tasks",
        )
