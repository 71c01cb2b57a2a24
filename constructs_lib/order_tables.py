"""The order read model, the idempotency store and the catalog."""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

PENDING_INDEX = "pending-by-age"


def _key(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


class OrderTables(Construct):
    """Attributes: ``orders`` (key ``order_id``, PITR), ``idempotency`` (Powertools layout, TTL) and
    ``catalog`` (key ``sku`` + ``part``: a product item and its stock shards, runtime/orders/adapters/catalog.py).

    Every table the same way: on-demand billing (a flash sale is a spike, not a steady rate), encrypted,
    point-in-time recovery, protected from deletion when the data is kept.
    """

    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self._removal = removal_policy
        self.orders = self._table("Orders", partition_key=_key("order_id"))
        # Sparse: only PLACED and PAYING orders carry pending_key (runtime/orders/adapters/dynamodb.py), so
        # the reconciler queries what is stuck, never scans what is done.
        self.orders.add_global_secondary_index(
            index_name=PENDING_INDEX,
            partition_key=_key("pending_key"),
            sort_key=_key("updated_at"),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        self.idempotency = self._table("Idempotency", partition_key=_key("id"), time_to_live_attribute="expiration")
        self.catalog = self._table("Catalog", partition_key=_key("sku"), sort_key=_key("part"))

    def _table(self, construct_id: str, **keys: Any) -> dynamodb.Table:
        return dynamodb.Table(
            self,
            construct_id,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=self._removal == RemovalPolicy.RETAIN,
            removal_policy=self._removal,
            **keys,
        )
