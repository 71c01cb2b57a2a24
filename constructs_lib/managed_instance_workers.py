"""The Lambda worker on Lambda Managed Instances: the same function and handler on EC2 instances of a
capacity provider in a VPC of its own, fed by the orders queue's event source mapping."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from constructs import Construct

from constructs_lib.nag import acknowledge
from constructs_lib.order_runtime import (
    LAMBDA_WORKER_SERVICE,
    PipelineData,
    grant_worker,
    records_failed,
    runtime_function,
)
from constructs_lib.pipeline_monitoring import WorkerSignals

# The least MaxVCpuCount aws-cdk-lib accepts on a capacity provider (CloudFormation allows 2-15,000).
MIN_CAPACITY_PROVIDER_VCPUS = 12
_OPERATOR_POLICY = "Policy::arn:<AWS::Partition>:iam::aws:policy/AWSLambdaManagedEC2ResourceOperator"


@dataclass(frozen=True, kw_only=True)
class EnvironmentProps:
    """One execution environment and how many the published version keeps.

    ``concurrency``: PerExecutionEnvironmentMaxConcurrency (Python: one process per request);
    ``memory_gib_per_vcpu``: 2, 4 or 8; ``memory_mb``: the function's memory, whole vCPUs of it.
    """

    concurrency: int
    memory_gib_per_vcpu: int
    memory_mb: int
    min_envs: int
    max_envs: int

    @property
    def vcpus(self) -> int:
        return self.memory_mb // (1024 * self.memory_gib_per_vcpu)


class InstanceNetwork(Construct):
    """Private subnets without a route out: the instances reach DynamoDB through a gateway endpoint, SNS and
    CloudWatch Logs (the worker's logs and its EMF metrics) through interface endpoints. The orders queue is
    polled by the event source mapping, not from the instances, so the VPC needs no SQS endpoint.

    Attributes: ``vpc``, ``security_group``, ``flow_logs``.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, log_retention: logs.RetentionDays, removal_policy: RemovalPolicy
    ) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=3,
            nat_gateways=0,
            restrict_default_security_group=False,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="instances", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24)
            ],
            gateway_endpoints={
                "DynamoDb": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.DYNAMODB)
            },
        )
        for name, service in (
            ("Sns", ec2.InterfaceVpcEndpointAwsService.SNS),
            ("Logs", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS),
        ):
            endpoint = self.vpc.add_interface_endpoint(name, service=service, private_dns_enabled=True)
            acknowledge(
                endpoint.node.find_child("SecurityGroup"),
                "AwsSolutions-EC23",
                "The endpoint takes HTTPS from the VPC's own CIDR only (a token cdk-nag cannot read, so its "
                "open-ingress rule cannot evaluate it); the subnets have no route from outside.",
            )
        self.flow_logs = logs.LogGroup(self, "FlowLogs", retention=log_retention, removal_policy=removal_policy)
        self.vpc.add_flow_log(
            "RejectedTraffic",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(self.flow_logs),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "InstanceSecurityGroup",
            vpc=self.vpc,
            description="Order worker instances: no inbound, HTTPS out (the subnets route to the VPC endpoints only)",
            allow_all_outbound=False,
        )
        # Isolated subnets route nowhere but the endpoints: HTTPS out reaches them (DynamoDB's gateway endpoint
        # by its prefix list, which only a deploy-time lookup could name) and nothing else.
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to the VPC endpoints")


class ManagedInstanceWorkers(Construct):
    """Attributes: ``function``, ``capacity_provider``, ``network``, ``event_source``, ``trigger`` ("sqs"),
    ``concurrency_cap``.

    The function runs on the capacity provider from its first deployment: Lambda refuses to add or remove
    a capacity provider on an existing function, so this construct's id differs from ``LambdaWorkers``'
    and a switch between them replaces the function (and its mapping) rather than updating it. Code
    updates publish ``$LATEST.PUBLISHED``, which the unqualified name the mapping invokes resolves to.
    No reserved concurrency: the environments x their concurrency are the cap, and the mapping's maximum
    concurrency stays within it (config rule ``_managed_instances``).
    """

    trigger = "sqs"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data: PipelineData,
        environment: dict[str, str],
        layer: lambda_.ILayerVersion,
        environments: EnvironmentProps,
        timeout: Duration,
        max_concurrency: int,
        batch_size: int,
        batch_window: Duration,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.network = InstanceNetwork(self, "Network", log_retention=log_retention, removal_policy=removal_policy)
        self.capacity_provider = lambda_.CapacityProvider(
            self,
            "CapacityProvider",
            security_groups=[self.network.security_group],
            subnets=self.network.vpc.isolated_subnets,
            architectures=[lambda_.Architecture.ARM_64],
            max_v_cpu_count=max(MIN_CAPACITY_PROVIDER_VCPUS, environments.max_envs * environments.vcpus),
        )
        for role in [c for c in self.capacity_provider.node.children if hasattr(c, "role_arn")]:
            acknowledge(
                role,
                f"AwsSolutions-IAM4[{_OPERATOR_POLICY}]",
                "The operator role Lambda assumes to launch and manage the capacity provider's instances: AWS's "
                "own policy for it (Lambda Developer Guide, operator role for Lambda Managed Instances).",
            )
        self.logs = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=removal_policy)
        self.function = runtime_function(
            self,
            "Function",
            handler="orders.entrypoints.worker_lambda.handler",
            description="Order payment worker (Lambda Managed Instances, sqs trigger)",
            environment=environment,
            layer=layer,
            log_group=self.logs,
            memory_mb=environments.memory_mb,
            timeout=timeout,
        )
        self.capacity_provider.add_function(
            self.function,
            per_execution_environment_max_concurrency=environments.concurrency,
            execution_environment_memory_gib_per_v_cpu=environments.memory_gib_per_vcpu,
            latest_published_scaling_config=lambda_.LatestPublishedScalingConfig(
                min_execution_environments=environments.min_envs, max_execution_environments=environments.max_envs
            ),
            publish_to_latest_published=True,
        )
        grant_worker(data, self.function, poll_queue=False)
        self.concurrency_cap = min(max_concurrency, environments.max_envs * environments.concurrency)
        self.event_source = sources.SqsEventSource(
            data.queue,
            batch_size=batch_size,
            max_batching_window=batch_window,
            max_concurrency=max_concurrency,
            report_batch_item_failures=True,
        )
        self.function.add_event_source(self.event_source)
        self.vcpus_per_environment = environments.vcpus

    def signals(self) -> WorkerSignals:
        minute = Duration.minutes(1)
        concurrent = self.function.metric("ConcurrentExecutions", statistic="Maximum", period=minute)
        return WorkerSignals(
            errors=records_failed(LAMBDA_WORKER_SERVICE),
            saturation=concurrent,
            saturation_threshold=self.concurrency_cap,
            saturation_description=f"The worker runs at its concurrency cap ({self.concurrency_cap}): "
            "the backlog may outgrow it",
            workers=concurrent,
            workers_label="Concurrent executions",
        )
