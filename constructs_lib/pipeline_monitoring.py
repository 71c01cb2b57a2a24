"""Alarms and one dashboard for the pipeline, whichever compute runs the workers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from constructs_lib.order_runtime import PipelineData


@dataclass(frozen=True)
class WorkerSignals:
    """What the compute variant reports: errors, saturation (throttles or at max tasks), workers."""

    errors: cloudwatch.IMetric
    saturation: cloudwatch.IMetric
    saturation_threshold: float
    saturation_description: str
    workers: cloudwatch.IMetric
    workers_label: str


@dataclass(frozen=True)
class ApiSignals:
    """What the HTTP API reports: server errors (5xx) and latency."""

    server_errors: cloudwatch.IMetric
    latency_p99: cloudwatch.IMetric
    latency_p99_threshold_ms: float


class PipelineMonitoring(Construct):
    """Attributes: ``alarm_topic``, ``alarms`` (name -> Alarm), ``dashboard``.

    ``consumer_alarms``: the fan-out consumers' own alarms (their DLQs), by name, sent to the same topic.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data: PipelineData,
        workers: WorkerSignals,
        api: ApiSignals,
        oldest_message_age: Duration,
        consumer_alarms: Mapping[str, cloudwatch.Alarm],
        alarm_email: str,
        dashboard_name: str,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarm_topic = self._alarm_topic(alarm_email, removal_policy)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self._alarms(data, workers, api, oldest_message_age, consumer_alarms)
        self._dashboard(data, workers, dashboard_name)

    def _alarm_topic(self, alarm_email: str, removal_policy: RemovalPolicy) -> sns.Topic:
        """An encrypted topic CloudWatch may publish this account's alarms to (key and topic policy)."""
        key = kms.Key(
            self,
            "AlarmTopicKey",
            enable_key_rotation=True,
            description="Encrypts alarm notifications",
            removal_policy=removal_policy,
        )
        # CloudWatch publishes the alarms of this account only (SNS developer guide, "Enable compatibility
        # between event sources from AWS services and encrypted topics": the service principal, with
        # aws:SourceAccount and aws:SourceArn against confused deputies).
        from_our_alarms = {
            "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
            "ArnLike": {"aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"},
        }
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy "*" means this key
                conditions=from_our_alarms,
            )
        )
        topic = sns.Topic(self, "AlarmTopic", master_key=key, enforce_ssl=True)
        # enforce_ssl writes a topic policy holding only its Deny, which replaces SNS's default policy:
        # without this Allow CloudWatch may not publish and no alarm e-mail is ever sent.
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarms",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                # aws:SourceArn only: it is the key CloudWatch's documented topic policy conditions on
                # (re:Post, "SNS notifications for CloudWatch alarms"); the ARN pattern names the account.
                conditions={"ArnLike": from_our_alarms["ArnLike"]},
            )
        )
        if alarm_email:
            topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        return topic

    def _alarms(
        self,
        data: PipelineData,
        workers: WorkerSignals,
        api: ApiSignals,
        oldest_message_age: Duration,
        consumer_alarms: Mapping[str, cloudwatch.Alarm],
    ) -> None:
        minute = Duration.minutes(1)
        oldest = data.queue.metric_approximate_age_of_oldest_message(statistic="Maximum", period=minute)
        dead = data.dlq.metric_approximate_number_of_messages_visible(statistic="Maximum", period=minute)
        specs = {
            "DeadLetters": (dead, 1, "Orders reached the dead-letter queue: inspect and redrive", 1),
            "OldestMessageAge": (
                oldest,
                oldest_message_age.to_seconds(),
                "Orders wait longer than the agreed payment delay",
                5,
            ),
            "WorkerErrors": (workers.errors, 1, "Workers are failing orders (retries in progress)", 5),
            "WorkerSaturation": (workers.saturation, workers.saturation_threshold, workers.saturation_description, 15),
            "ApiServerErrors": (api.server_errors, 1, "The API answers 5xx: orders are being turned away", 3),
            "ApiLatencyP99": (
                api.latency_p99,
                api.latency_p99_threshold_ms,
                "The API's p99 latency is above the agreed accept time",
                5,
            ),
        }
        for name, (metric, threshold, description, periods) in specs.items():
            alarm = cloudwatch.Alarm(
                self,
                name,
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))
            self.alarms[name] = alarm
        for name, alarm in consumer_alarms.items():
            alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))
            self.alarms[name] = alarm

    def _dashboard(self, data: PipelineData, workers: WorkerSignals, dashboard_name: str) -> None:
        minute = Duration.minutes(1)
        queue_depth = data.queue.metric_approximate_number_of_messages_visible(statistic="Maximum", period=minute)
        in_flight = data.queue.metric_approximate_number_of_messages_not_visible(statistic="Maximum", period=minute)
        oldest = data.queue.metric_approximate_age_of_oldest_message(statistic="Maximum", period=minute)
        dead = data.dlq.metric_approximate_number_of_messages_visible(statistic="Maximum", period=minute)
        processed = data.queue.metric_number_of_messages_deleted(statistic="Sum", period=minute)
        received = data.queue.metric_number_of_messages_sent(statistic="Sum", period=minute)
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Queue depth", left=[queue_depth, in_flight], right=[dead], width=12),
            cloudwatch.GraphWidget(title="Oldest order waiting (s)", left=[oldest], width=12),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Orders in / paid out per minute", left=[received, processed], width=12),
            cloudwatch.GraphWidget(
                title=workers.workers_label, left=[workers.workers], right=[workers.errors], width=12
            ),
        )
