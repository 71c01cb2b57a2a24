"""The project's deploy rules (constructs_lib/deploy_rules.py): each one passes a correct bare stack and fails
the defect it names, as the synthesized template shows it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs

from app import build_app, new_app
from constructs_lib.apigw_account import ApiGatewayAccount
from constructs_lib.deploy_rules import DeployRules
from constructs_lib.ecs_workers import QueueWorkerService, TaskProps
from constructs_lib.order_api import HTTP_ACCESS_LOG, WEBSOCKET_ACCESS_LOG, JsonAccessLogs
from tests.infra.conftest import VARIANTS


def violations(tmp_path: Path, build: Callable[[cdk.Stack], None]) -> set[str]:
    """The Deploy rule ids (with findings) a bare stack built by ``build`` violates."""
    app = cdk.App(outdir=str(tmp_path))
    build(cdk.Stack(app, "Bare"))
    cdk.Validations.of(app).add_plugins(DeployRules(app))
    try:
        app.synth()
    except RuntimeError as exc:
        assert "ValidationFailed" in str(exc)
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert all("error" not in p.get("metadata", {}) for p in report["pluginReports"]), report
    return {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}


# ----------------------------------------------------------------------------- access-log variables
def _stage(stack: cdk.Stack, protocol: str, fields: dict[str, str], *, account: bool = True) -> None:
    group = logs.LogGroup(stack, "Logs")
    if protocol == "HTTP":
        api = apigw.HttpApi(stack, "Api", create_default_stage=False)
        apigw.HttpStage(stack, "Stage", http_api=api, access_log_settings=JsonAccessLogs(group, fields))
        return
    ws = apigw.WebSocketApi(stack, "Ws")
    stage = apigw.WebSocketStage(
        stack, "Stage", web_socket_api=ws, stage_name="live", access_log_settings=JsonAccessLogs(group, fields)
    )
    if account:
        stage.node.add_dependency(ApiGatewayAccount(stack, "Account").account)


def test_access_log_formats_of_the_project_pass(tmp_path):
    assert violations(tmp_path / "http", lambda s: _stage(s, "HTTP", HTTP_ACCESS_LOG)) == set()
    assert violations(tmp_path / "ws", lambda s: _stage(s, "WEBSOCKET", WEBSOCKET_ACCESS_LOG)) == set()


def test_http_variables_on_a_websocket_stage_fail_one_finding_each(tmp_path):
    found = violations(tmp_path, lambda s: _stage(s, "WEBSOCKET", HTTP_ACCESS_LOG))
    assert found == {
        f"Deploy-ApiAccessLogVariables[$context.{v}]"
        for v in ("httpMethod", "path", "protocol", "responseLength", "integrationErrorMessage")
    }


def test_rest_resource_path_on_an_http_stage_fails(tmp_path):
    fields = {**HTTP_ACCESS_LOG, "resourcePath": "$context.resourcePath"}
    assert violations(tmp_path, lambda s: _stage(s, "HTTP", fields)) == {
        "Deploy-ApiAccessLogVariables[$context.resourcePath]"
    }


# ----------------------------------------------------------------------------- API Gateway account role
def test_websocket_stage_logging_without_the_account_role_fails(tmp_path):
    found = violations(tmp_path, lambda s: _stage(s, "WEBSOCKET", WEBSOCKET_ACCESS_LOG, account=False))
    assert found == {"Deploy-ApiGatewayAccountRole"}


def test_http_stage_logging_needs_no_account_role(tmp_path):
    # (the passing WebSocket case, with the role, is test_access_log_formats_of_the_project_pass)
    assert violations(tmp_path, lambda s: _stage(s, "HTTP", HTTP_ACCESS_LOG)) == set()


# ----------------------------------------------------------------------------- alarm topics
def _alarm_to(stack: cdk.Stack, *, allow: bool, key_grant: bool = True) -> None:
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    source = {"StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}}
    if key_grant:
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions=source,
            )
        )
    topic = sns.Topic(stack, "Topic", master_key=key, enforce_ssl=True)
    if allow:
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions=source,
            )
        )
    metric = cloudwatch.Metric(namespace="Test", metric_name="Errors")
    alarm = cloudwatch.Alarm(stack, "Alarm", metric=metric, threshold=1, evaluation_periods=1)
    alarm.add_alarm_action(cw_actions.SnsAction(topic))


def test_alarm_topic_that_allows_cloudwatch_passes(tmp_path):
    assert violations(tmp_path, lambda s: _alarm_to(s, allow=True)) == set()


def test_alarm_topic_whose_tls_policy_locks_cloudwatch_out_fails(tmp_path):
    assert violations(tmp_path, lambda s: _alarm_to(s, allow=False)) == {"Deploy-AlarmTopicPublishable[TopicPolicy]"}


def test_alarm_topic_whose_key_cloudwatch_cannot_use_fails(tmp_path):
    found = violations(tmp_path, lambda s: _alarm_to(s, allow=True, key_grant=False))
    assert found == {"Deploy-AlarmTopicPublishable[KeyPolicy]"}


# ----------------------------------------------------------------------------- service principals
def _queue_policy(stack: cdk.Stack, *, condition: bool) -> None:
    queue = sqs.Queue(stack, "Queue", enforce_ssl=True)
    topic = sns.Topic(stack, "Topic")
    queue.add_to_resource_policy(
        iam.PolicyStatement(
            sid="FromTopic",
            principals=[iam.ServicePrincipal("sns.amazonaws.com")],
            actions=["sqs:SendMessage"],
            resources=[queue.queue_arn],
            conditions={"ArnEquals": {"aws:SourceArn": topic.topic_arn}} if condition else None,
        )
    )


def test_service_grant_with_a_source_condition_passes(tmp_path):
    assert violations(tmp_path, lambda s: _queue_policy(s, condition=True)) == set()


def test_service_grant_without_a_source_condition_fails(tmp_path):
    found = violations(tmp_path, lambda s: _queue_policy(s, condition=False))
    assert found == {"Deploy-ServicePrincipalSourceCondition[FromTopic]"}


# ----------------------------------------------------------------------------- ECS capacity providers
def _fargate_service(stack: cdk.Stack, *, project_construct: bool) -> None:
    vpc = ec2.Vpc(
        stack,
        "Vpc",
        max_azs=1,
        nat_gateways=0,
        subnet_configuration=[ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC)],
    )
    sg = ec2.SecurityGroup(stack, "Sg", vpc=vpc)
    if project_construct:
        QueueWorkerService(
            stack,
            "Workers",
            vpc=vpc,
            security_group=sg,
            data=_bare_pipeline_data(stack),
            environment={},
            task=TaskProps(
                image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/w:1",
                worker_concurrency=2,
                cpu=256,
                memory_mb=512,
                spot=True,
                on_demand_base=1,
                stop_timeout=cdk.Duration.seconds(30),
            ),
            log_retention=logs.RetentionDays.ONE_WEEK,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        return
    cluster = ecs.Cluster(stack, "Cluster", vpc=vpc, enable_fargate_capacity_providers=True)
    task = ecs.FargateTaskDefinition(stack, "Task")
    task.add_container("c", image=ecs.ContainerImage.from_registry("public.ecr.aws/docker/library/busybox:1"))
    ecs.FargateService(
        stack,
        "Service",
        cluster=cluster,
        task_definition=task,
        security_groups=[sg],
        capacity_provider_strategies=[ecs.CapacityProviderStrategy(capacity_provider="FARGATE_SPOT", weight=1)],
    )


def _bare_pipeline_data(stack: cdk.Stack):
    from aws_cdk import aws_dynamodb as dynamodb

    from constructs_lib.order_runtime import PipelineData

    key = kms.Key(stack, "EventsKey", enable_key_rotation=True)
    table = dynamodb.Table(stack, "T", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING))
    return PipelineData(
        topic=sns.Topic(stack, "Events", master_key=key),
        topic_key=key,
        queue=sqs.Queue(stack, "Q"),
        dlq=sqs.Queue(stack, "D"),
        orders_table=table,
        idempotency_table=table,
        catalog_table=table,
    )


def test_project_fargate_service_waits_for_its_capacity_providers(tmp_path):
    assert "Deploy-ServiceAfterCapacityProviders" not in violations(
        tmp_path, lambda s: _fargate_service(s, project_construct=True)
    )


def test_plain_fargate_service_with_a_strategy_fails(tmp_path):
    assert violations(tmp_path, lambda s: _fargate_service(s, project_construct=False)) == {
        "Deploy-ServiceAfterCapacityProviders"
    }


# ----------------------------------------------------------------------------- dead-letter queues
def _dlq(stack: cdk.Stack, *, alarmed: bool) -> None:
    dlq = sqs.Queue(stack, "Dlq", enforce_ssl=True)
    sqs.Queue(stack, "Work", enforce_ssl=True, dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=3))
    if alarmed:
        cloudwatch.Alarm(
            stack,
            "DeadLetters",
            metric=dlq.metric_approximate_number_of_messages_visible(),
            threshold=1,
            evaluation_periods=1,
        )


def test_alarmed_dead_letter_queue_passes(tmp_path):
    assert violations(tmp_path, lambda s: _dlq(s, alarmed=True)) == set()


def test_unwatched_dead_letter_queue_fails(tmp_path):
    assert violations(tmp_path, lambda s: _dlq(s, alarmed=False)) == {"Deploy-DeadLetterQueueAlarmed"}


# ----------------------------------------------------------------------------- the app
def test_the_app_runs_the_deploy_rules_and_stops_on_a_finding(tmp_path):
    # GIVEN the real app with an unwatched dead-letter queue added to the data stack
    app = new_app(outdir=str(tmp_path), **VARIANTS["lambda-sqs"])
    data, _ = build_app(app)
    dlq = sqs.Queue(data, "Forgotten", enforce_ssl=True)
    sqs.Queue(data, "Feeds", enforce_ssl=True, dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=2))
    # WHEN it is synthesized THEN validation fails and names the rule
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert "Deploy-DeadLetterQueueAlarmed" in {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}


def test_opting_out_of_the_account_role_is_an_acknowledged_finding(variant):
    # apiGatewayCloudWatchRole=false: no AWS::ApiGateway::Account, and the stage carries the acknowledgement
    synth = variant("lambda-tuned")
    assert not [r for r in synth.service_json["Resources"].values() if r["Type"] == "AWS::ApiGateway::Account"]
