"""Stock through the API handler against moto's DynamoDB: priced by the server, never oversold, given
back once. Concurrent checkouts run in threads, so the transactions really interleave."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from orders import bootstrap
from orders.adapters.catalog import load, stock_levels
from orders.domain.catalog import parse_catalog
from orders.domain.errors import SoldOutError
from orders.domain.models import parse_order_request
from orders.entrypoints import api
from tests.helpers import FakeLambdaContext, http_event

SCARCE = {"customer_id": "c-1", "items": [{"sku": "SKU-SCARCE", "qty": 1}]}


def call(event, ctx=None):
    resp = api.handler(event, ctx or FakeLambdaContext())
    return resp["statusCode"], json.loads(resp["body"]), resp.get("headers", {})


def levels(aws) -> dict[str, dict]:
    return {s["sku"]: s for s in stock_levels(aws.ddb, "catalog")}


def orders_holding(aws, sku: str) -> int:
    """Units of ``sku`` held by orders that did not fail: counted from the orders, not the stock counters."""
    held = 0
    for item in aws.ddb.scan(TableName="orders")["Items"]:
        if item["status"]["S"] in ("PAYMENT_FAILED", "REJECTED"):
            continue
        held += sum(int(i["M"]["qty"]["N"]) for i in item["items"]["L"] if i["M"]["sku"]["S"] == sku)
    return held


def reload(aws, shards: int, **stock: int) -> None:
    text = json.loads((Path(__file__).parents[1] / "events" / "catalog.json").read_text())
    for row in text["products"]:
        row["stock"] = stock.get(row["sku"].replace("-", "_"), row["stock"])
    load(aws.ddb, "catalog", parse_catalog(json.dumps(text), shards=shards))


@pytest.mark.parametrize("shards", [1, 4])
def test_concurrent_checkouts_never_oversell_at_one_or_many_shards(aws, shards):
    # GIVEN 5 units of a scarce SKU over `shards` shards, and 24 shoppers checking out at once (both routes)
    # through the service the API runs, on the real DynamoDB adapters: one process serves one request at a
    # time in Lambda, and Powertools' resolver (the handler's router) is per-process state, so threads
    # share the service, as ECS workers do, not the handler
    reload(aws, shards, SKU_SCARCE=5)
    c = bootstrap.container()
    c.payments.register_lambda_context(FakeLambdaContext())
    cart = parse_order_request(SCARCE)
    start = threading.Barrier(24)
    answers: list[tuple[int, str]] = []

    def shop(n: int) -> None:
        start.wait()
        try:
            if n % 3 == 0:
                order = c.service.place_and_pay(c.service.price(cart))
                answers.append((201 if order.status.value == "PAID" else 202, ""))
            else:
                c.service.accept(c.service.price(cart))
                answers.append((202, ""))
        except SoldOutError:
            answers.append((409, "sold_out"))

    threads = [threading.Thread(target=shop, args=(n,)) for n in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # THEN every shopper got an answer, no more than 5 got the SKU, the rest were told sold out
    got = Counter(answers)
    sold = got[(202, "")] + got[(201, "")]
    assert sum(got.values()) == 24 and got[(409, "sold_out")] == 24 - sold, got
    assert sold == 5  # one-unit checkouts: refused only once nothing is left on any shard
    # AND the orders hold exactly what the stock says was sold, and the counters add up
    s = levels(aws)["SKU-SCARCE"]
    assert orders_holding(aws, "SKU-SCARCE") == s["sold"] - s["released"] == 5
    assert s["sold"] + s["left"] == s["initial"] + s["released"] and s["left"] == 0


def test_sold_out_price_changed_and_unknown_sku_write_nothing(aws):
    reload(aws, 1, SKU_SCARCE=0)
    cases = [
        (SCARCE, 409, "sold_out"),
        ({"customer_id": "c", "items": [{"sku": "SKU-1", "qty": 1, "price": "0.01"}]}, 409, "price_changed"),
        ({"customer_id": "c", "items": [{"sku": "SKU-TV-OLED65", "qty": 1}]}, 422, "unknown_sku"),
        (
            {"customer_id": "c", "items": [{"sku": "SKU-1", "qty": 1}, {"sku": "SKU-YEN", "qty": 1}]},
            400,
            "invalid_order",
        ),
    ]
    for body, status, error in cases:
        for route in ("/orders", "/orders/sync"):
            got, answer, _ = call(http_event("POST", route, body))
            assert (got, answer["error"]) == (status, error), (route, body, answer)
    changed = call(http_event("POST", "/orders", cases[1][0]))[1]
    assert (changed["price"], changed["currency"]) == ("9.99", "USD")  # the price to show and confirm
    assert aws.ddb.scan(TableName="orders")["Count"] == 0 and aws.queue_messages() == []
    assert all(s["sold"] == 0 for s in levels(aws).values())


def test_the_charge_is_the_catalog_price_whatever_the_body_says(aws):
    # GIVEN a body with no prices at all (JSON numbers elsewhere never reach float)
    status, body, _ = call(
        http_event("POST", "/orders/sync", {"customer_id": "c", "items": [{"sku": "SKU-YEN", "qty": 3}]})
    )
    assert status == 201 and (body["total"], body["currency"]) == ("4500", "JPY")
    ledger = bootstrap.container().processor.ledger
    assert [e.amount for e in ledger.entries()] == ["4500"]


def test_a_declined_sync_checkout_gives_its_stock_back_and_a_replay_reserves_nothing(aws):
    reload(aws, 1, SKU_SCARCE=1)
    declined = {**SCARCE, "payment_token": "tok_declined"}
    event = http_event("POST", "/orders/sync", declined)
    event["headers"]["idempotency-key"] = "k-declined-1"
    status, _, _ = call(event)
    assert status == 402
    assert levels(aws)["SKU-SCARCE"]["left"] == 1  # given back with the PAYMENT_FAILED transition
    # WHEN the same checkout is retried with its key THEN the first answer is replayed and nothing is reserved
    again, _, headers = call(event)
    assert again == 402 and headers.get("Idempotent-Replayed") == "true"
    s = levels(aws)["SKU-SCARCE"]
    assert (s["sold"], s["released"], s["left"]) == (1, 1, 1)
    # AND the unit sells to the next shopper
    assert call(http_event("POST", "/orders", SCARCE))[0] == 202


def test_the_sale_page_lists_price_and_stock_left_cacheably(aws):
    reload(aws, 4, SKU_SCARCE=3)
    call(http_event("POST", "/orders", SCARCE))
    status, body, headers = call(http_event("GET", "/catalog"))
    listed = {p["sku"]: p for p in body["products"]}
    assert status == 200 and listed["SKU-SCARCE"] == {
        "sku": "SKU-SCARCE",
        "name": "Scarce product",
        "price": "100.00",
        "currency": "USD",
        "left": 2,
    }
    assert headers["Cache-Control"].startswith("public, max-age=")
