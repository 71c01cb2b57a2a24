"""A work queue with its dead-letter queue: encrypted at rest, TLS-only, redrive after N receives."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from constructs_lib.nag import acknowledge


class WorkQueue(Construct):
    """Attributes: ``queue``, ``dlq``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        visibility_timeout: Duration,
        max_receive_count: int,
        retention: Duration,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dlq = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=removal_policy,
        )
        acknowledge(self.dlq, "AwsSolutions-SQS3", "This queue is the dead-letter queue; it has none of its own.")
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=visibility_timeout,
            retention_period=retention,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=max_receive_count),
            removal_policy=removal_policy,
        )

    def accept_from(self, topic: sns.ITopic) -> None:
        """Let this one topic deliver to the queue (the subscription itself belongs to the consumer)."""
        _allow_topic(self.queue, topic)

    def accept_dead_letters_from(self, topic: sns.ITopic) -> None:
        """Let the topic park undeliverable messages here (SNS subscription DLQ of a direct subscriber)."""
        _allow_topic(self.dlq, topic)


def _allow_topic(queue: sqs.Queue, topic: sns.ITopic) -> None:
    queue.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal("sns.amazonaws.com")],
            actions=["sqs:SendMessage"],
            resources=[queue.queue_arn],
            conditions={"ArnEquals": {"aws:SourceArn": topic.topic_arn}},
        )
    )
