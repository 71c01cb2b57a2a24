import json

import pytest

from orders.entrypoints import api
from tests.helpers import http_event


def call(event, ctx):
    resp = api.handler(event, ctx)
    return resp["statusCode"], json.loads(resp["body"]), resp.get("headers", {})


def test_post_order_is_accepted_recorded_and_published(aws, valid_order, lambda_context):
    status, body, _headers = call(http_event("POST", "/orders", valid_order), lambda_context)
    assert status == 202
    assert body["status"] == "PLACED" and body["status_url"] == f"/orders/{body['order_id']}"
    assert aws.order(body["order_id"])["status"] == "PLACED"
    [msg] = aws.queue_messages()
    event = json.loads(msg["Body"])
    assert event["event_type"] == "order_placed" and event["order_id"] == body["order_id"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [("{not json", "body"), ("", "body"), (json.dumps({"customer_id": "c1", "items": [], "currency": "USD"}), "items")],
)
def test_malformed_order_is_400_naming_field_and_never_published(aws, lambda_context, raw, field):
    status, body, _ = call(http_event("POST", "/orders", raw_body=raw), lambda_context)
    assert status == 400 and body["field"] == field
    assert aws.queue_messages() == []
    assert aws.ddb.scan(TableName="orders")["Count"] == 0


def test_publish_failure_is_503_and_leaves_only_a_rejected_tombstone(aws, valid_order, lambda_context, monkeypatch):
    monkeypatch.setenv("ORDER_EVENTS_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:missing-topic")
    from orders import bootstrap

    bootstrap.reset()
    status, _body, headers = call(http_event("POST", "/orders", valid_order), lambda_context)
    assert status == 503 and headers.get("Retry-After")
    [item] = aws.ddb.scan(TableName="orders")["Items"]
    assert item["status"]["S"] == "REJECTED" and item["failure_reason"]["S"] == "not_published"
    assert aws.queue_messages() == []


def test_get_order_returns_state_or_404(aws, valid_order, lambda_context):
    _, placed, _ = call(http_event("POST", "/orders", valid_order), lambda_context)
    status, body, _ = call(http_event("GET", f"/orders/{placed['order_id']}"), lambda_context)
    assert status == 200 and body["status"] == "PLACED" and body["total"] == "47.48"
    status, body, _ = call(http_event("GET", "/orders/does-not-exist"), lambda_context)
    assert status == 404


def test_sync_path_pays_inline_without_queueing(aws, valid_order, lambda_context):
    status, body, _ = call(http_event("POST", "/orders/sync", valid_order), lambda_context)
    assert status == 201 and body["status"] == "PAID" and body["payment_id"].startswith("pay_")
    assert aws.queue_messages() == []  # payment_confirmed is filtered out of the worker queue
    status, body, _ = call(
        http_event("POST", "/orders/sync", {**valid_order, "payment_token": "tok_declined"}), lambda_context
    )
    assert status == 402 and body["status"] == "PAYMENT_FAILED"


def test_backpressure_answers_429_with_retry_after(aws, valid_order, lambda_context, monkeypatch):
    monkeypatch.setenv("BACKPRESSURE_MAX_QUEUE_DEPTH", "2")
    from orders import bootstrap

    bootstrap.reset()
    codes = [call(http_event("POST", "/orders", valid_order), lambda_context)[0] for _ in range(3)]
    assert codes == [202, 202, 202]  # depth is read at most once a second: the first read saw 0
    bootstrap.container().service.depth_probe._read_at = -10.0  # next request re-reads the depth
    status, _body, headers = call(http_event("POST", "/orders", valid_order), lambda_context)
    assert status == 429 and headers["Retry-After"] == "5"
    assert aws.depth()[0] == 3


def test_a_create_retried_after_its_first_attempt_landed_is_not_a_duplicate(aws, valid_order):
    # GIVEN an order written once with its stock (the first attempt landed, its answer was lost)
    from dataclasses import replace

    from orders.adapters.catalog import DynamoCatalog, stock_levels
    from orders.adapters.dynamodb import DuplicateOrderError, DynamoOrderRepository
    from orders.domain.models import parse_order_request
    from orders.domain.service import OrderService

    repo = DynamoOrderRepository("orders", lambda: aws.ddb, catalog_table="catalog")
    catalog = DynamoCatalog("catalog", lambda: aws.ddb, cache_s=0)
    svc = OrderService(repository=repo, publisher=None, payments=None, catalog=catalog)  # type: ignore[arg-type]
    request = svc.price(parse_order_request(valid_order))
    order = svc._create(svc._new_order(request, None), dict(request.shards))
    # WHEN the client's retry writes it again THEN that is the same write, not an error, and takes no stock
    repo.create(order)
    sold = {s["sku"]: s["sold"] for s in stock_levels(aws.ddb, "catalog")}
    assert (sold["SKU-RED-TEE"], sold["SKU-CAP"]) == (2, 1)
    # AND another order under the same id is still refused
    with pytest.raises(DuplicateOrderError):
        repo.create(replace(order, customer_id="someone-else"))
