"""The order read model and the idempotency store."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

PENDING_INDEX = "pending-by-age"


class OrderTables(Construct):
    """Attributes: ``orders`` (key ``order_id``, PITR), ``idempotency`` (Powertools layout, TTL) and
    ``catalog`` (key ``sku`` + ``part``: a product item and its stock shards, runtime/orders/adapters/catalog.py).

    On-demand billing: a flash sale is a spike, not a steady rate.
    """

    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        protect = removal_policy == RemovalPolicy.RETAIN
        self.orders = dynamodb.Table(
            self,
            "Orders",
            partition_key=dynamodb.Attribute(name="order_id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=protect,
            removal_policy=removal_policy,
        )
        # Sparse: only PLACED and PAYING orders carry pending_key (runtime/orders/adapters/dynamodb.py), so
        # the reconciler queries what is stuck, never scans what is done.
        self.orders.add_global_secondary_index(
            index_name=PENDING_INDEX,
            partition_key=dynamodb.Attribute(name="pending_key", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="updated_at", type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        self.idempotency = dynamodb.Table(
            self,
            "Idempotency",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute="expiration",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=protect,
            removal_policy=removal_policy,
        )
        self.catalog = dynamodb.Table(
            self,
            "Catalog",
            partition_key=dynamodb.Attribute(name="sku", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="part", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=protect,
            removal_policy=removal_policy,
        )
