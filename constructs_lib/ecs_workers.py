"""ECS Fargate queue workers, autoscaled on backlog per task.

Better than ``QueueProcessingFargateService``'s fixed steps on visible messages:

* target tracking on (visible + in-flight) / running tasks: capacity follows
  the backlog each task must work off, and in-flight messages keep busy tasks
  counted, so scale-in does not start while work is held;
* a wake step that, when messages are visible and none run, adds the task
  count the backlog implies (target tracking alone cannot leave zero, and
  waking one task and waiting for tracking costs the flash sale's first minutes);
  it adds (ChangeInCapacity) rather than sets, so a late RunningTaskCount
  datapoint that makes a busy service look idle can never lower its capacity;
* a missing RunningTaskCount datapoint gives target tracking no datapoint (no
  action), never a backlog divided by one task that would drive it to maxTasks;
* with Fargate Spot, the first ``on_demand_base`` tasks run on on-demand Fargate,
  so a Spot reclaim mid-sale cannot take every worker.

Three units, each buildable on its own: ``WorkerNetwork`` (VPC, security group,
flow log), ``QueueWorkerService`` (cluster, task definition, service, grants) and
``BacklogScaling`` (scalable target, target tracking, wake step); ``EcsQueueWorkers``
wires them.
* tasks protect themselves from scale-in while they hold messages (ECS task
  scale-in protection), and on SIGTERM finish or release what they hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import jsii
from aws_cdk import Aspects, Duration, IAspect, RemovalPolicy, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from constructs_lib.nag import acknowledge
from constructs_lib.order_runtime import (
    ECS_WORKER_SERVICE,
    PYTHON_VERSION,
    RUNTIME_DIR,
    PipelineData,
    grant_worker,
    records_failed,
)
from constructs_lib.pipeline_monitoring import WorkerSignals
from planner.policy import wake_steps

_TT = appscaling.CfnScalingPolicy


def _sqs_metric(
    query_id: str, queue_name: str, metric_name: str
) -> appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty:
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


class WorkerNetwork(Construct):
    """Public subnets, no NAT gateway, no inbound rules: tasks only call AWS APIs out.

    Attributes: ``vpc``, ``security_group``, ``flow_logs``.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, log_retention: logs.RetentionDays, removal_policy: RemovalPolicy
    ) -> None:
        super().__init__(scope, construct_id)
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
        self.flow_logs = logs.LogGroup(self, "FlowLogs", retention=log_retention, removal_policy=removal_policy)
        self.vpc.add_flow_log(
            "RejectedTraffic",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(self.flow_logs),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        self.security_group = ec2.SecurityGroup(
            self, "TaskSecurityGroup", vpc=self.vpc, description="Order workers: no inbound", allow_all_outbound=True
        )


@jsii.implements(IAspect)
class _ServiceAfterCapacityProviders:
    """Make the service wait for its cluster's capacity-provider association.

    The service's strategy names FARGATE/FARGATE_SPOT, which ECS refuses ("a capacity provider that is not
    associated with the cluster") if CloudFormation creates the service before the
    AWS::ECS::ClusterCapacityProviderAssociations; aws-cdk-lib adds no such dependency, and creates the
    association in an aspect of its own (at mutating priority, so this default-priority one runs after it).
    """

    def __init__(self, service: ecs.FargateService) -> None:
        self.service = service

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, ecs.CfnClusterCapacityProviderAssociations):
            self.service.node.add_dependency(node)


@dataclass(frozen=True, kw_only=True)
class TaskProps:
    """One worker task: its image (empty: build runtime/Dockerfile), size, consumers and capacity."""

    image_uri: str
    worker_concurrency: int
    cpu: int
    memory_mb: int
    spot: bool
    on_demand_base: int
    stop_timeout: Duration


@dataclass(frozen=True, kw_only=True)
class ScalingProps:
    """The service's capacity and the backlog each task should carry."""

    min_tasks: int
    max_tasks: int
    backlog_per_task_target: int
    wake_queue_depth: int
    scale_out_cooldown: Duration
    scale_in_cooldown: Duration


def capacity_strategy(*, spot: bool, on_demand_base: int) -> list[ecs.CapacityProviderStrategy]:
    """Spot for the bulk, with the first ``on_demand_base`` tasks on on-demand Fargate; on-demand only otherwise."""
    if not spot:
        return [ecs.CapacityProviderStrategy(capacity_provider="FARGATE", weight=1)]
    strategy = [ecs.CapacityProviderStrategy(capacity_provider="FARGATE_SPOT", weight=1)]
    if on_demand_base:
        strategy.insert(0, ecs.CapacityProviderStrategy(capacity_provider="FARGATE", base=on_demand_base, weight=0))
    return strategy


class QueueWorkerService(Construct):
    """The Fargate service running the worker entry point, with its grants and logs.

    Attributes: ``cluster``, ``logs``, ``task_definition``, ``container``, ``service``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        security_group: ec2.ISecurityGroup,
        data: PipelineData,
        environment: dict[str, str],
        task: TaskProps,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
            enable_fargate_capacity_providers=True,
        )
        self.logs = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=removal_policy)
        self._task_definition(environment, task)
        self._grants(data)
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            assign_public_ip=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_groups=[security_group],
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            capacity_provider_strategies=capacity_strategy(spot=task.spot, on_demand_base=task.on_demand_base),
        )
        Aspects.of(self.cluster).add(_ServiceAfterCapacityProviders(self.service))
        self._acknowledge()

    def _task_definition(self, environment: dict[str, str], task: TaskProps) -> None:
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            cpu=task.cpu,
            memory_limit_mib=task.memory_mb,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        image = (
            ecs.ContainerImage.from_registry(task.image_uri)
            if task.image_uri
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
                "WORKER_CONCURRENCY": str(task.worker_concurrency),
                "WORKER_STOP_TIMEOUT_S": str(max(5, int(task.stop_timeout.to_seconds()) - 5)),
                "ECS_TASK_PROTECTION": "true",
            },
            logging=ecs.LogDrivers.aws_logs(stream_prefix="worker", log_group=self.logs),
            stop_timeout=task.stop_timeout,
            readonly_root_filesystem=True,
        )

    def _grants(self, data: PipelineData) -> None:
        stack = Stack.of(self)
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

    def _acknowledge(self) -> None:
        stack = Stack.of(self)
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


class BacklogScaling(Construct):
    """Target tracking on backlog per running task, plus the wake step for a service at zero.

    Attributes: ``scalable_target``, ``running_tasks`` (metric), ``backlog_policy``, ``wake_alarm``, ``wake_action``.
    """

    # No datapoint where RunningTaskCount is missing or zero: target tracking then does nothing,
    # rather than reading the whole backlog as one task's and scaling to maxTasks.
    BACKLOG_EXPRESSION = "(visible + inflight) / running"
    WAKE_EXPRESSION = "IF(FILL(running, 0) == 0, visible, 0)"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster_name: str,
        service_name: str,
        queue: sqs.IQueue,
        scaling: ScalingProps,
    ) -> None:
        super().__init__(scope, construct_id)
        self.scalable_target = appscaling.ScalableTarget(
            self,
            "ScalableTarget",
            service_namespace=appscaling.ServiceNamespace.ECS,
            resource_id=f"service/{cluster_name}/{service_name}",
            scalable_dimension="ecs:service:DesiredCount",
            min_capacity=scaling.min_tasks,
            max_capacity=scaling.max_tasks,
        )
        dimensions = {"ClusterName": cluster_name, "ServiceName": service_name}
        self.running_tasks = cloudwatch.Metric(
            namespace="ECS/ContainerInsights",
            metric_name="RunningTaskCount",
            dimensions_map=dimensions,
            statistic="Average",
            period=Duration.minutes(1),
        )
        self.backlog_policy = self._backlog_tracking(queue, dimensions, scaling)
        self._wake_step(queue, scaling)

    def _backlog_tracking(
        self, queue: sqs.IQueue, dimensions: dict[str, str], scaling: ScalingProps
    ) -> appscaling.CfnScalingPolicy:
        """Target tracking on (visible + in flight) / running tasks, a customized metric of three queries."""
        stack = Stack.of(self)
        return _TT(
            self,
            "BacklogPerTaskTracking",
            policy_name=f"{stack.stack_name}-backlog-per-task",
            policy_type="TargetTrackingScaling",
            scaling_target_id=self.scalable_target.scalable_target_id,
            target_tracking_scaling_policy_configuration=_TT.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=scaling.backlog_per_task_target,
                scale_out_cooldown=int(scaling.scale_out_cooldown.to_seconds()),
                scale_in_cooldown=int(scaling.scale_in_cooldown.to_seconds()),
                customized_metric_specification=_TT.CustomizedMetricSpecificationProperty(
                    metrics=[
                        _sqs_metric("visible", queue.queue_name, "ApproximateNumberOfMessagesVisible"),
                        _sqs_metric("inflight", queue.queue_name, "ApproximateNumberOfMessagesNotVisible"),
                        _TT.TargetTrackingMetricDataQueryProperty(
                            id="running",
                            return_data=False,
                            metric_stat=_TT.TargetTrackingMetricStatProperty(
                                stat="Average",
                                metric=_TT.TargetTrackingMetricProperty(
                                    namespace="ECS/ContainerInsights",
                                    metric_name="RunningTaskCount",
                                    dimensions=[
                                        _TT.TargetTrackingMetricDimensionProperty(name=k, value=v)
                                        for k, v in dimensions.items()
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

    def _wake_step(self, queue: sqs.IQueue, scaling: ScalingProps) -> None:
        """The alarm and step scaling that wake a service at zero to the task count its backlog implies."""
        visible = queue.metric_approximate_number_of_messages_visible(statistic="Maximum", period=Duration.minutes(1))
        self.wake_alarm = cloudwatch.Alarm(
            self,
            "WakeFromZero",
            alarm_description=(
                f"{scaling.wake_queue_depth}+ messages visible and no task running: start the tasks they imply"
            ),
            metric=cloudwatch.MathExpression(
                expression=self.WAKE_EXPRESSION,
                using_metrics={"running": self.running_tasks, "visible": visible},
                period=Duration.minutes(1),
                label="Visible messages while no task runs",
            ),
            threshold=scaling.wake_queue_depth,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        # Adds the implied count: from zero that is the count itself; on a busy service that only looks idle
        # (a late datapoint) it can add tasks, never take them away.
        self.wake_action = appscaling.StepScalingAction(
            self,
            "WakeAction",
            scaling_target=self.scalable_target,
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            metric_aggregation_type=appscaling.MetricAggregationType.MAXIMUM,
            cooldown=scaling.scale_out_cooldown,
        )
        # Step bounds are relative to the alarm threshold.
        for lowest, above, tasks in wake_steps(
            min_tasks=scaling.min_tasks,
            max_tasks=scaling.max_tasks,
            target=scaling.backlog_per_task_target,
            wake_depth=scaling.wake_queue_depth,
        ):
            self.wake_action.add_adjustment(
                adjustment=tasks,
                lower_bound=lowest - scaling.wake_queue_depth,
                upper_bound=None if above is None else above - scaling.wake_queue_depth,
            )
        self.wake_alarm.add_alarm_action(cw_actions.ApplicationScalingAction(self.wake_action))


class EcsQueueWorkers(Construct):
    """The ECS variant: network, service and backlog scaling wired to the orders queue.

    Attributes: ``network``, ``workers``, ``scaling`` (the three units), and for convenience ``vpc``,
    ``cluster``, ``task_definition``, ``container``, ``service``, ``logs``, ``scalable_target``,
    ``backlog_policy``, ``wake_alarm``, ``running_tasks``. The queue's subscription is the stack's
    ``workers_inbox``, at one construct path whatever ``compute`` is.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data: PipelineData,
        environment: dict[str, str],
        task: TaskProps,
        scaling: ScalingProps,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.network = WorkerNetwork(self, "Network", log_retention=log_retention, removal_policy=removal_policy)
        self.workers = QueueWorkerService(
            self,
            "Workers",
            vpc=self.network.vpc,
            security_group=self.network.security_group,
            data=data,
            environment=environment,
            task=task,
            log_retention=log_retention,
            removal_policy=removal_policy,
        )
        self.scaling = BacklogScaling(
            self,
            "Scaling",
            cluster_name=self.workers.cluster.cluster_name,
            service_name=self.workers.service.service_name,
            queue=data.queue,
            scaling=scaling,
        )
        self.max_tasks = scaling.max_tasks
        self.vpc, self.security_group = self.network.vpc, self.network.security_group
        self.cluster, self.logs = self.workers.cluster, self.workers.logs
        self.task_definition, self.container, self.service = (
            self.workers.task_definition,
            self.workers.container,
            self.workers.service,
        )
        self.scalable_target, self.backlog_policy = self.scaling.scalable_target, self.scaling.backlog_policy
        self.wake_alarm, self.running_tasks = self.scaling.wake_alarm, self.scaling.running_tasks

    def signals(self) -> WorkerSignals:
        return WorkerSignals(
            errors=records_failed(ECS_WORKER_SERVICE),  # Powertools (EMF) metrics from the worker's stdout
            saturation=self.running_tasks,
            saturation_threshold=self.max_tasks,
            saturation_description="The service runs at maxTasks: the backlog may outgrow the workers",
            workers=self.running_tasks,
            workers_label="Running worker tasks",
        )
