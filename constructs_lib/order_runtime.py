"""How infrastructure meets the ``runtime/`` package: code asset, layer, environment, grants.

Both compute variants and the API use this, so the environment contract and
the least-privilege grants are written once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Aws, CfnCondition, Duration, Fn
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from constructs_lib.nag import acknowledge

RUNTIME_DIR = Path(__file__).resolve().parent.parent / "runtime"
PLATFORM = json.loads((RUNTIME_DIR / "platform.json").read_text())  # Python minor and Powertools: one place
PYTHON_VERSION: str = PLATFORM["python"]
LAMBDA_RUNTIME = lambda_.Runtime(f"python{PYTHON_VERSION}", lambda_.RuntimeFamily.PYTHON)
POWERTOOLS_LAYER_NAME = f"AWSLambdaPowertoolsPythonV3-python{PYTHON_VERSION.replace('.', '')}-arm64"
# The metrics the runtime emits (runtime/orders/entrypoints/observability.py; an infra test checks they agree).
METRICS_NAMESPACE = "FlashSaleOrders"
LAMBDA_WORKER_SERVICE = "orders-worker"
ECS_WORKER_SERVICE = "orders-worker-ecs"
RECORDS_FAILED = "RecordsFailed"
# Who publishes the official Powertools layers, per partition (Powertools for AWS Lambda (Python), "Install":
# https://docs.aws.amazon.com/powertools/python/latest/getting-started/install/, read Dec 2026). Commercial
# regions share one account; China publishes in cn-north-1 only; GovCloud uses one account per region and
# other version numbers. Where a region is not listed here, ``powertoolsLayerArn`` names the layer, and
# ``make preflight`` checks the layer exists in the target region either way.
POWERTOOLS_ACCOUNTS: dict[str, str | dict[str, str]] = {
    "aws": "017000801446",
    "aws-cn": "498634801083",  # cn-north-1
    "aws-us-gov": {"us-gov-east-1": "165087284144", "us-gov-west-1": "165093116878"},
}
POWERTOOLS_ACCOUNT = str(POWERTOOLS_ACCOUNTS["aws"])
_LAMBDA_BASIC_ROLE = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
_ASSET_EXCLUDE = ["Dockerfile", ".dockerignore", "requirements.txt", "platform.json", "**/__pycache__", "**/*.pyc"]


@dataclass(frozen=True)
class PipelineData:
    """The stateful resources, as seen by a consumer: imported references only.

    Grants on imported resources change only the grantee's own policy, so no
    compute choice can ever modify the data stack.
    """

    topic: sns.ITopic
    topic_key: kms.IKey
    queue: sqs.IQueue
    dlq: sqs.IQueue
    orders_table: dynamodb.ITable
    idempotency_table: dynamodb.ITable
    catalog_table: dynamodb.ITable


@dataclass(frozen=True)
class PaymentSettings:
    slots: int
    latency_ms: int
    failure_rate: float
    lost_response_share: float = 0.0
    slow_share: float = 0.0


def runtime_environment(
    data: PipelineData,
    *,
    payments: PaymentSettings,
    visibility_timeout_s: int,
    idempotency_ttl_s: int,
    backpressure_max_queue_depth: int = 0,
    service: str,
) -> dict[str, str]:
    """The environment contract read by ``orders.settings`` (see DESIGN: Environment)."""
    return {
        "ORDER_EVENTS_TOPIC_ARN": data.topic.topic_arn,
        "ORDERS_QUEUE_URL": data.queue.queue_url,
        "ORDERS_TABLE_NAME": data.orders_table.table_name,
        "IDEMPOTENCY_TABLE_NAME": data.idempotency_table.table_name,
        "CATALOG_TABLE_NAME": data.catalog_table.table_name,
        "PAYMENT_SLOTS": str(payments.slots),
        "PAYMENT_LATENCY_MS": str(payments.latency_ms),
        "PAYMENT_FAILURE_RATE": str(payments.failure_rate),
        "PAYMENT_LOST_RESPONSE_SHARE": str(payments.lost_response_share),
        "PAYMENT_SLOW_SHARE": str(payments.slow_share),
        "QUEUE_VISIBILITY_TIMEOUT_S": str(visibility_timeout_s),
        "IDEMPOTENCY_TTL_S": str(idempotency_ttl_s),
        "BACKPRESSURE_MAX_QUEUE_DEPTH": str(backpressure_max_queue_depth),
        "POWERTOOLS_SERVICE_NAME": service,
        "POWERTOOLS_METRICS_NAMESPACE": "FlashSaleOrders",
    }


def _publish(data: PipelineData, grantee: iam.IGrantable) -> None:
    data.topic.grant_publish(grantee)
    data.topic_key.grant(grantee, "kms:GenerateDataKey", "kms:Decrypt")


def _pay(data: PipelineData, grantee: iam.IGrantable) -> None:
    """Read and move orders; record payments idempotently; give a failed order's stock back (an UpdateItem
    of its shards in the transaction that moves it: a transaction's items need their own actions)."""
    data.orders_table.grant(grantee, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
    data.idempotency_table.grant(
        grantee, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"
    )
    data.catalog_table.grant(grantee, "dynamodb:UpdateItem")


def grant_worker(data: PipelineData, grantee: iam.IGrantable, *, poll_queue: bool) -> None:
    """What a worker needs. ``poll_queue``: it receives from the queue itself (ECS)."""
    _pay(data, grantee)
    _publish(data, grantee)
    if poll_queue:
        data.queue.grant(
            grantee,
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes",
        )


def grant_reconciler(data: PipelineData, grantee: iam.IGrantable, *, index_name: str) -> None:
    """Find stuck orders through the sparse pending index (Query on that index only: never a scan, never
    another index), move them, publish their events again."""
    data.orders_table.grant(grantee, "dynamodb:GetItem", "dynamodb:UpdateItem")
    data.catalog_table.grant(grantee, "dynamodb:UpdateItem")  # a failed order's stock, given back
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(actions=["dynamodb:Query"], resources=[f"{data.orders_table.table_arn}/index/{index_name}"])
    )
    _publish(data, grantee)


def grant_api(data: PipelineData, grantee: iam.IGrantable) -> None:
    """What the API needs: accept (write + publish), pay inline (sync), read, probe depth. It never deletes
    an order: an accept whose publish failed is closed by a conditional update, not removed."""
    _pay(data, grantee)
    _publish(data, grantee)
    data.queue.grant(grantee, "sqs:GetQueueAttributes")
    # Price and reserve: products by key, the sale page's listing (a small table, cached), and each stock
    # shard's conditional decrement in the order's transaction (UpdateItem, granted by _pay).
    data.catalog_table.grant(grantee, "dynamodb:BatchGetItem", "dynamodb:Scan")


def pin_runtime(function: lambda_.Function) -> None:
    """Record why the functions run LAMBDA_RUNTIME rather than the newest runtime cdk-nag knows."""
    acknowledge(
        function,
        "AwsSolutions-L1",
        f"Pinned to {LAMBDA_RUNTIME.name}: the pinned official Powertools layer is published for it, "
        "and the tests run the same Python minor; move both together.",
    )


def runtime_function(
    scope: Construct,
    construct_id: str,
    *,
    handler: str,
    description: str,
    environment: dict[str, str],
    layer: lambda_.ILayerVersion,
    log_group: logs.ILogGroup,
    memory_mb: int,
    timeout: Duration,
    **options: Any,
) -> lambda_.Function:
    """A function running ``runtime/`` on ARM64 with the Powertools layer and JSON logs."""
    function = lambda_.Function(
        scope,
        construct_id,
        runtime=LAMBDA_RUNTIME,
        architecture=lambda_.Architecture.ARM_64,
        code=lambda_code(),
        handler=handler,
        memory_size=memory_mb,
        timeout=timeout,
        layers=[layer],
        environment=environment,
        log_group=log_group,
        logging_format=lambda_.LoggingFormat.JSON,
        description=description,
        **options,
    )
    pin_runtime(function)
    if function.role is not None:
        acknowledge(
            function.role,
            f"AwsSolutions-IAM4[{_LAMBDA_BASIC_ROLE}]",
            "AWSLambdaBasicExecutionRole only lets the function write its own logs.",
        )
    return function


def lambda_code() -> lambda_.Code:
    """The ``runtime/`` folder as-is: no bundling, so synth needs no Docker."""
    return lambda_.Code.from_asset(str(RUNTIME_DIR), exclude=_ASSET_EXCLUDE)


def powertools_publisher(partition: str, region: str) -> str | None:
    """The account that publishes the official layer in this partition and region, if there is one."""
    account = POWERTOOLS_ACCOUNTS.get(partition)
    if isinstance(account, dict):
        return account.get(region)
    if partition == "aws-cn" and region != "cn-north-1":
        return None
    return account


def powertools_layer(scope: Construct, construct_id: str, *, layer_arn: str, version: int) -> lambda_.ILayerVersion:
    """The official Powertools layer for our runtime and ARM64 (or the ARN given in context).

    The stack is environment-agnostic, so the publisher is picked at deploy time by conditions on the
    partition and region (Fn::If only: no mapping lookup that could fail in a region it does not list). A
    region without an official layer gets an ARN that does not exist there; ``make preflight`` says so
    first, naming ``powertoolsLayerArn``.
    """
    if layer_arn:
        return lambda_.LayerVersion.from_layer_version_arn(scope, construct_id, layer_arn)
    choices: list[tuple[str, str]] = []  # (condition id, account), most specific first
    for partition, account in POWERTOOLS_ACCOUNTS.items():
        if isinstance(account, dict):
            for region, acct in account.items():
                cond = CfnCondition(
                    scope,
                    f"{construct_id}In{region.title().replace('-', '')}",
                    expression=Fn.condition_equals(Aws.REGION, region),
                )
                choices.append((cond.logical_id, acct))
        elif partition != "aws":
            cond = CfnCondition(
                scope,
                f"{construct_id}In{partition.title().replace('-', '')}",
                expression=Fn.condition_equals(Aws.PARTITION, partition),
            )
            choices.append((cond.logical_id, account))
    publisher: Any = POWERTOOLS_ACCOUNT  # commercial, when no condition holds
    for condition_id, acct in reversed(choices):
        publisher = Fn.condition_if(condition_id, acct, publisher)
    arn = f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{publisher.to_string()}:layer:{POWERTOOLS_LAYER_NAME}:{version}"
    return lambda_.LayerVersion.from_layer_version_arn(scope, construct_id, arn)


def records_failed(service: str) -> cloudwatch.Metric:
    """Records a worker could not finish, from its Powertools (EMF) metrics, per minute."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=RECORDS_FAILED,
        dimensions_map={"service": service},
        statistic="Sum",
        period=Duration.minutes(1),
    )
