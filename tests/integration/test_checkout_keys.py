"""The Idempotency-Key contract of POST /orders and /orders/sync (docs/checkout.md), against moto."""

import json
import threading

import pytest

from orders import bootstrap
from orders.entrypoints import api
from tests.helpers import http_event


def call(event, ctx):
    resp = api.handler(event, ctx)
    return resp["statusCode"], json.loads(resp["body"]), resp.get("headers") or {}


def keyed(path, body, key):
    event = http_event("POST", path, body)
    event["headers"]["idempotency-key"] = key
    return event


def orders(aws):
    return aws.ddb.scan(TableName="orders")["Items"]


@pytest.mark.parametrize("path", ["/orders", "/orders/sync"])
def test_a_retried_checkout_is_answered_from_the_first_and_creates_one_order(aws, valid_order, lambda_context, path):
    # GIVEN a checkout, answered
    first = call(keyed(path, valid_order, "chk-1"), lambda_context)
    # WHEN the client retries it with the same key (a timeout, a lost answer)
    again = call(keyed(path, valid_order, "chk-1"), lambda_context)
    # THEN it gets the same answer, marked as a replay, and there is one order, charged at most once
    assert again[0] == first[0] in (201, 202) and again[1] == first[1]
    assert again[2].get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first[2]
    [item] = orders(aws)
    assert item["checkout_key"]["S"] == "chk-1"
    charges = bootstrap.container().processor.charges
    assert charges == (1 if path.endswith("sync") else 0)


def test_the_same_key_with_another_body_is_422_and_writes_nothing(aws, valid_order, lambda_context):
    call(keyed("/orders", valid_order, "chk-2"), lambda_context)
    other = {**valid_order, "items": [{"sku": "SKU-CAP", "qty": 9, "price": "7.50"}]}
    status, body, _ = call(keyed("/orders", other, "chk-2"), lambda_context)
    assert status == 422 and body["error"] == "idempotency_key_reused"
    assert len(orders(aws)) == 1 and len(aws.queue_messages()) == 1


def test_a_duplicate_while_the_first_runs_is_409_with_retry_after(aws, valid_order, lambda_context, monkeypatch):
    # GIVEN a first request held inside accept
    service = bootstrap.container().service
    entered, release = threading.Event(), threading.Event()
    real_accept = service.accept

    def slow_accept(*args, **kwargs):
        entered.set()
        release.wait(10)
        return real_accept(*args, **kwargs)

    monkeypatch.setattr(service, "accept", slow_accept)
    results = []
    request = keyed("/orders", valid_order, "chk-3")
    first = threading.Thread(target=lambda: results.append(call(request, lambda_context)))
    first.start()
    assert entered.wait(10)
    # WHEN the duplicate arrives
    status, body, headers = call(keyed("/orders", valid_order, "chk-3"), lambda_context)
    release.set()
    first.join(10)
    # THEN it is told to retry, and only the first created an order
    assert status == 409 and body["error"] == "request_in_progress" and headers["Retry-After"] == "1"
    assert results[0][0] == 202 and len(orders(aws)) == 1


def test_a_failed_checkout_stores_nothing_so_its_retry_with_the_key_can_succeed(
    aws, valid_order, lambda_context, monkeypatch
):
    # GIVEN the topic is unreachable: the checkout is refused (503, never charged)
    real_topic = bootstrap.container().settings.topic_arn
    monkeypatch.setenv("ORDER_EVENTS_TOPIC_ARN", real_topic + "-missing")
    bootstrap.reset()
    assert call(keyed("/orders", valid_order, "chk-4"), lambda_context)[0] == 503
    # WHEN the client retries with the same key once the topic is back
    monkeypatch.setenv("ORDER_EVENTS_TOPIC_ARN", real_topic)
    bootstrap.reset()
    status, _body, headers = call(keyed("/orders", valid_order, "chk-4"), lambda_context)
    # THEN the retry runs (not a replay of the 503) and is accepted
    assert status == 202 and "Idempotent-Replayed" not in headers
    assert sorted(i["status"]["S"] for i in orders(aws)) == ["PLACED", "REJECTED"]


def test_keys_are_scoped_to_the_caller(aws, valid_order, lambda_context):
    a = call(keyed("/orders", valid_order, "chk-5"), lambda_context)
    b = call(keyed("/orders", {**valid_order, "customer_id": "cust-other"}, "chk-5"), lambda_context)
    assert a[0] == b[0] == 202 and a[1]["order_id"] != b[1]["order_id"]


@pytest.mark.parametrize("key", ["x" * 256, "has space", "", "caf\u00e9"])
def test_an_unusable_key_is_400_naming_the_header(aws, valid_order, lambda_context, key):
    status, body, _ = call(keyed("/orders", valid_order, key), lambda_context)
    assert status == 400 and body["field"] == "Idempotency-Key"
    assert orders(aws) == []


def test_a_required_key_refuses_a_checkout_without_one(aws, valid_order, lambda_context, monkeypatch):
    monkeypatch.setenv("REQUIRE_IDEMPOTENCY_KEY", "true")
    bootstrap.reset()
    status, body, _ = call(http_event("POST", "/orders", valid_order), lambda_context)
    assert status == 400 and body["error"] == "invalid_idempotency_key"
    assert call(keyed("/orders", valid_order, "chk-6"), lambda_context)[0] == 202
