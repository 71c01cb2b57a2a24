"""AWS Fault Injection Service experiments for the deployed workers (``-c chaos=true``; off by default).

ECS: stop a share of the worker tasks (``aws:ecs:stop-task``). Lambda: invocation errors and
added start-up delay on the worker function (``aws:lambda:invocation-error``,
``aws:lambda:invocation-add-delay``), which need the AWS FIS Lambda extension as a layer and an
S3 location through which FIS tells the extension what to inject. Every experiment stops
itself when the pipeline's DLQ or oldest-message alarm fires. Start one during a load test:
``aws fis start-experiment --experiment-template-id <the ...ExperimentTemplateId output>``.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_fis as fis
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from constructs_lib.nag import acknowledge

_Experiment = tuple[
    dict[str, fis.CfnExperimentTemplate.ExperimentTemplateTargetProperty],
    dict[str, fis.CfnExperimentTemplate.ExperimentTemplateActionProperty],
    str,
]


class FaultInjection(Construct):
    """Attributes: ``role``, ``template``, and for Lambda ``config_bucket``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stop_alarms: Sequence[cloudwatch.IAlarm],
        cluster: ecs.ICluster | None = None,
        service_name: str | None = None,
        function: lambda_.Function | None = None,
        extension_layer_arn: str = "",
        stop_task_percent: int = 30,
        error_percent: int = 10,
        delay_ms: int = 2000,
        duration: str = "PT5M",
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("fis.amazonaws.com"),
            description="Lets this stack's fault-injection experiment act on its own workers only",
        )
        stop_conditions = [
            fis.CfnExperimentTemplate.ExperimentTemplateStopConditionProperty(
                source="aws:cloudwatch:alarm", value=alarm.alarm_arn
            )
            for alarm in stop_alarms
        ]
        self.config_bucket: s3.Bucket | None = None
        if function is None:
            if cluster is None or not service_name:
                raise ValueError("an ECS experiment needs the cluster and the service name")
            targets, actions, description = self._ecs_experiment(cluster, service_name, stop_task_percent)
        else:
            if not extension_layer_arn:
                raise ValueError("a Lambda experiment needs the AWS FIS Lambda extension layer ARN")
            targets, actions, description = self._lambda_experiment(
                function, extension_layer_arn, error_percent, delay_ms, duration, removal_policy
            )
        self.template = fis.CfnExperimentTemplate(
            self,
            "Template",
            description=description,
            role_arn=self.role.role_arn,
            stop_conditions=stop_conditions,
            targets=targets,
            actions=actions,
            tags={"Name": f"{stack.stack_name}-workers"},
        )

    def _ecs_experiment(self, cluster: ecs.ICluster, service_name: str, stop_task_percent: int) -> _Experiment:
        """Stop a share of the service's tasks; the role may stop and list this cluster's tasks only."""
        stack = Stack.of(self)
        cluster_name = cluster.cluster_name
        cluster_id = stack.resolve(stack.get_logical_id(cluster.node.default_child))  # type: ignore[arg-type]
        task_arns = stack.format_arn(service="ecs", resource="task", resource_name=f"{cluster_name}/*")
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["ecs:StopTask", "ecs:DescribeTasks"], resources=[task_arns])
        )
        # ListTasks authorizes on container-instance ARNs, which a Fargate cluster has none of: FIS's own
        # managed policy (AWSFaultInjectionSimulatorECSAccess) grants it on "*"; the ecs:cluster
        # condition (Service Authorization Reference, ListTasks) keeps it to this cluster.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["ecs:ListTasks"],
                resources=["*"],
                conditions={"ArnEquals": {"ecs:cluster": cluster.cluster_arn}},
            )
        )
        targets = {
            "WorkerTasks": fis.CfnExperimentTemplate.ExperimentTemplateTargetProperty(
                resource_type="aws:ecs:task",
                selection_mode=f"PERCENT({stop_task_percent})",
                parameters={"cluster": cluster_name, "service": service_name},
            )
        }
        actions = {
            "StopWorkerTasks": fis.CfnExperimentTemplate.ExperimentTemplateActionProperty(
                action_id="aws:ecs:stop-task", targets={"Tasks": "WorkerTasks"}
            )
        }
        description = f"Stop {stop_task_percent}% of the order worker tasks"
        acknowledge(
            self.role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:task/<{cluster_id}>/*]",
            "Task ARNs exist only at run time; the grant covers this cluster's tasks, for these two actions.",
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecs:ListTasks has no resource a Fargate cluster can name; the ecs:cluster condition scopes it.",
        )
        return targets, actions, description

    def _lambda_experiment(
        self,
        function: lambda_.Function,
        extension_layer_arn: str,
        error_percent: int,
        delay_ms: int,
        duration: str,
        removal_policy: RemovalPolicy,
    ) -> _Experiment:
        """Fail and delay invocations through the FIS Lambda extension, configured from an S3 prefix."""
        stack = Stack.of(self)
        self.config_bucket = bucket = s3.Bucket(
            self,
            "ConfigBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            versioned=True,
            removal_policy=removal_policy,
        )
        acknowledge(
            self.config_bucket,
            "AwsSolutions-S1",
            "Holds only FIS fault configurations written by FIS; CloudTrail records who started experiments.",
        )
        prefix = "FisConfigs"
        location = f"{bucket.bucket_arn}/{prefix}/"
        function.add_layers(lambda_.LayerVersion.from_layer_version_arn(self, "Extension", extension_layer_arn))
        function.add_environment("AWS_FIS_CONFIGURATION_LOCATION", location)
        function.add_environment("AWS_LAMBDA_EXEC_WRAPPER", "/opt/aws-fis/bootstrap")
        # What the FIS user guide asks of the extension: list the prefix, read its objects; nothing else.
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{prefix}/*"]}},
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"{prefix}/*")])
        )
        bucket_id = stack.resolve(stack.get_logical_id(bucket.node.default_child))  # type: ignore[arg-type]
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:DeleteObject"],
                resources=[bucket.arn_for_objects(f"{prefix}/*")],
            )
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=["lambda:GetFunction"], resources=[function.function_arn]))
        targets = {
            "WorkerFunction": fis.CfnExperimentTemplate.ExperimentTemplateTargetProperty(
                resource_type="aws:lambda:function",
                selection_mode="ALL",
                resource_arns=[function.function_arn],
            )
        }
        actions = {
            "InvocationErrors": fis.CfnExperimentTemplate.ExperimentTemplateActionProperty(
                action_id="aws:lambda:invocation-error",
                parameters={
                    "duration": duration,
                    "invocationPercentage": str(error_percent),
                    "preventExecution": "true",
                },
                targets={"Functions": "WorkerFunction"},
            ),
            "InvocationDelay": fis.CfnExperimentTemplate.ExperimentTemplateActionProperty(
                action_id="aws:lambda:invocation-add-delay",
                parameters={"duration": duration, "startupDelayMilliseconds": str(delay_ms)},
                targets={"Functions": "WorkerFunction"},
            ),
        }
        description = f"Fail {error_percent}% of worker invocations and delay start-up by {delay_ms} ms"
        for target in (self.role, function):
            acknowledge(
                target,
                f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{prefix}/*]",
                "FIS writes and the extension reads fault configurations under one prefix of this bucket only.",
            )
        return targets, actions, description
