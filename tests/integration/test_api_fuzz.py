"""Hostile input against the real API handler: never a 5xx, and a 4xx leaves no record and no message.

Property-based, with a fixed seed (derandomized), 150 examples per property (the signed-in one 60).
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orders.entrypoints import api
from tests.helpers import http_event

FUZZ = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

VALID = {"customer_id": "cust-1", "items": [{"sku": "SKU-1", "qty": 1, "price": "9.99"}], "currency": "USD"}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
hostile_text = st.sampled_from(
    ["cust-1\n", "١٢٣", "-0.00", "1e30", "NaN", "Infinity", "0x10", " 7 ", "1_0", "\u0000", "a" * 65, "tok\r\n"]
)


def post(raw: str | bytes, ctx, content_type: str = "application/json") -> int:
    event = http_event("POST", "/orders", raw_body=raw if isinstance(raw, str) else raw.decode("latin-1"))
    event["headers"] = {"content-type": content_type}
    return int(api.handler(event, ctx)["statusCode"])


def counts(aws) -> tuple[int, int, int]:
    """Orders written, messages queued, units of stock reserved: a 4xx must change none of them."""
    from orders.adapters.catalog import stock_levels

    sold = sum(s["sold"] for s in stock_levels(aws.ddb, "catalog"))
    return aws.ddb.scan(TableName="orders", Select="COUNT")["Count"], sum(aws.depth()), sold


def check(aws, ctx, raw, content_type="application/json") -> int:
    before = counts(aws)
    status = post(raw, ctx, content_type)
    assert status < 500, (status, raw)
    if 400 <= status < 500:
        assert counts(aws) == before, f"a {status} left a record or a message: {raw!r}"
    return status


@FUZZ
@given(field=st.sampled_from(["customer_id", "currency", "payment_token", "items", "extra"]), value=json_values)
def test_any_json_value_in_any_field_is_a_4xx_or_a_valid_order(aws, lambda_context, field, value):
    check(aws, lambda_context, json.dumps({**VALID, field: value}))


@FUZZ
@given(
    field=st.sampled_from(["sku", "qty", "price", "colour"]),
    value=json_values | hostile_text,
    count=st.integers(min_value=0, max_value=60),
)
def test_any_item_value_and_count_is_a_4xx_or_a_valid_order(aws, lambda_context, field, value, count):
    item = {**VALID["items"][0], field: value}
    status = check(aws, lambda_context, json.dumps({**VALID, "items": [item] * count}))
    if isinstance(value, str) and field in ("price", "qty") and value in {"١٢٣", "-0.00", "1e30", " 7 ", "1_0"}:
        assert status == 400  # never read as a number


@FUZZ
@given(raw=st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_bytes_are_a_4xx(aws, lambda_context, raw):
    assert 400 <= check(aws, lambda_context, raw) < 500


@pytest.mark.parametrize(
    ("raw", "content_type", "status"),
    [
        ("[" * 1000 + "]" * 1000, "application/json", 400),  # nested 1,000 deep
        (json.dumps({**VALID, "customer_id": "x" * 20_000}), "application/json", 413),
        (json.dumps(VALID), "text/plain", 415),
        (json.dumps(VALID), "", 415),
        (json.dumps({**VALID, "items": [{"sku": "S", "qty": 1, "price": 1e30}]}), "application/json", 400),
        (json.dumps({**VALID, "currency": ["USD"]}), "application/json", 400),
        (json.dumps({**VALID, "customer_id": "cust-1\n"}), "application/json", 400),
        (json.dumps(VALID), "application/json; charset=utf-8", 202),
    ],
)
def test_known_hostile_requests(aws, lambda_context, raw, content_type, status):
    assert check(aws, lambda_context, raw, content_type) == status


PRICES = {"SKU-1": "9.99", "SKU-CAP": "7.50", "SKU-SCARCE": "100.00", "SKU-YEN": "1500"}


@settings(FUZZ, max_examples=60)  # every combination of the four choices is 240; each example rebuilds the API
@given(
    sku=st.sampled_from([*PRICES, "SKU-NOPE", "sku-1"]),
    qty=st.integers(min_value=-1, max_value=150),
    shown=st.sampled_from(["right", "wrong", "absent", "float-text"]),
    named=st.sampled_from(["absent", "self", "other"]),
)
def test_signed_in_checkouts_are_priced_by_the_server_owned_by_the_caller_or_refused_whole(
    aws, lambda_context, monkeypatch, sku, qty, shown, named
):
    # GIVEN alice signed in (apiAuth=jwt), a cart of any SKU, quantity, displayed price and named customer
    from orders import bootstrap

    monkeypatch.setenv("API_AUTH", "jwt")
    bootstrap.reset()
    line: dict = {"sku": sku, "qty": qty}
    if shown != "absent":
        line["price"] = {"right": PRICES.get(sku, "1.00"), "wrong": "0.01", "float-text": "1e2"}[shown]
    body: dict = {"items": [line]}
    if named != "absent":
        body["customer_id"] = "alice" if named == "self" else "bob"
    event = http_event("POST", "/orders", body)
    event["requestContext"]["authorizer"] = {"jwt": {"claims": {"sub": "alice", "iss": "https://i/"}, "scopes": None}}
    before = counts(aws)
    resp = api.handler(event, lambda_context)
    status, answer = resp["statusCode"], json.loads(resp["body"])
    # THEN one clear 4xx that writes and reserves nothing, or an order the catalog priced, alice's
    assert status < 500, answer
    if status >= 400:
        assert counts(aws) == before and answer.get("error"), answer
        return
    assert status == 202 and sku in PRICES and 1 <= qty <= 100 and named != "other" and shown in ("right", "absent")
    order = aws.order(answer["order_id"])
    assert order["customer_id"] == "alice"
    from decimal import Decimal

    assert Decimal(order["total"]) == Decimal(PRICES[sku]) * qty
