"""The reconciler against moto: the sparse index holds exactly the non-terminal orders, and the handler
resolves what it finds there."""

import json

from orders import bootstrap
from orders.adapters.dynamodb import PENDING_INDEX
from orders.domain.models import OrderStatus
from orders.entrypoints import api, reconciler
from tests.helpers import http_event


def index_items(aws):
    return aws.ddb.scan(TableName="orders", IndexName=PENDING_INDEX)["Items"]


def test_only_pending_orders_are_in_the_index_and_the_handler_resolves_them(aws, valid_order, lambda_context):
    # GIVEN one order paid and one whose sync payment outcome was unknown (PAYING, answer lost)
    paid = json.loads(api.handler(http_event("POST", "/orders/sync", valid_order), lambda_context)["body"])
    processor = bootstrap.container().processor
    processor.failure_rate, processor.lost_response_share = 1.0, 1.0
    pending = json.loads(api.handler(http_event("POST", "/orders/sync", valid_order), lambda_context)["body"])
    assert paid["status"] == "PAID" and pending["status"] == "PAYING"
    # THEN the index holds the pending one only
    assert [i["order_id"]["S"] for i in index_items(aws)] == [pending["order_id"]]
    # WHEN the reconciler runs with no grace period
    object.__setattr__(bootstrap.container().settings, "reconcile_after_s", 0)
    counts = reconciler.handler({}, lambda_context)
    # THEN it adopted the charge the processor holds: PAID, out of the index, charged once
    assert counts["found"] == 1 and counts["adopted"] == 1
    assert aws.order(pending["order_id"])["status"] == OrderStatus.PAID.value
    assert index_items(aws) == [] and processor.charges == 2
