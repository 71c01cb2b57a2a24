"""The customer is the signed-in caller, never the body; an order answers only its owner.

Events carry the authorizer's context as API Gateway passes it (payload v2): ``authorizer.jwt.claims``
for apiAuth=jwt, ``authorizer.iam`` for apiAuth=iam.
"""

from __future__ import annotations

import json

import pytest

from orders import bootstrap
from orders.entrypoints import api
from tests.helpers import FakeLambdaContext, http_event

CART = {"items": [{"sku": "SKU-CAP", "qty": 1}]}
ISSUER = "https://issuer.example.com/"


def signed(event: dict, *, sub: str | None = None, arn: str | None = None) -> dict:
    if sub is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": {"sub": sub, "iss": ISSUER}, "scopes": None}}
    if arn is not None:
        event["requestContext"]["authorizer"] = {"iam": {"userArn": arn, "userId": "AIDAEXAMPLE"}}
    return event


def call(event: dict) -> tuple[int, dict]:
    resp = api.handler(event, FakeLambdaContext())
    return resp["statusCode"], json.loads(resp["body"])


@pytest.fixture
def auth(aws, monkeypatch):
    def use(mode: str) -> None:
        monkeypatch.setenv("API_AUTH", mode)
        bootstrap.reset()

    return use


def test_jwt_the_order_is_the_callers_and_only_the_caller_sees_it(aws, auth):
    auth("jwt")
    # GIVEN alice signed in, checking out without naming herself
    status, body = call(signed(http_event("POST", "/orders", CART), sub="alice"))
    assert status == 202
    order_id = body["order_id"]
    # THEN the order is alice's
    status, order = call(signed(http_event("GET", f"/orders/{order_id}"), sub="alice"))
    assert status == 200 and order["customer_id"] == "alice"
    # AND bob gets what he would for an unknown id, on both read paths
    unknown = call(signed(http_event("GET", "/orders/no-such-order"), sub="bob"))
    assert call(signed(http_event("GET", f"/orders/{order_id}"), sub="bob")) == (
        404,
        {**unknown[1], "order_id": order_id},
    )
    assert call(signed(http_event("GET", f"/orders/{order_id}/events"), sub="bob"))[0] == 404
    assert call(signed(http_event("GET", f"/orders/{order_id}/events"), sub="alice"))[0] == 200


def test_jwt_a_body_naming_another_customer_is_refused_and_nothing_is_written(aws, auth):
    auth("jwt")
    status, body = call(signed(http_event("POST", "/orders", {**CART, "customer_id": "bob"}), sub="alice"))
    assert (status, body["error"]) == (403, "customer_mismatch")
    assert call(signed(http_event("POST", "/orders", {**CART, "customer_id": "alice"}), sub="alice"))[0] == 202
    assert aws.ddb.scan(TableName="orders")["Count"] == 1


def test_jwt_without_the_callers_identity_is_401(aws, auth):
    auth("jwt")
    assert call(http_event("POST", "/orders", CART))[0] == 401
    assert call(http_event("GET", "/orders/x"))[0] == 401
    assert aws.ddb.scan(TableName="orders")["Count"] == 0


def test_a_subject_that_is_no_valid_id_maps_to_a_stable_customer(aws, auth):
    auth("jwt")
    status, body = call(signed(http_event("POST", "/orders", CART), sub="auth0|12345"))
    order = call(signed(http_event("GET", f"/orders/{body['order_id']}"), sub="auth0|12345"))[1]
    assert status == 202 and order["customer_id"].startswith("jwt:") and len(order["customer_id"]) <= 64


def test_iam_the_customer_is_the_signing_principal(aws, auth):
    auth("iam")
    arn = "arn:aws:sts::123456789012:assumed-role/shop-frontend/session-1"
    status, body = call(signed(http_event("POST", "/orders", CART), arn=arn))
    order = call(signed(http_event("GET", f"/orders/{body['order_id']}"), arn=arn))[1]
    assert status == 202 and order["customer_id"].startswith("iam:")
    other = "arn:aws:sts::123456789012:assumed-role/shop-frontend/session-2"
    assert call(signed(http_event("GET", f"/orders/{body['order_id']}"), arn=other))[0] == 404


def test_none_the_body_names_the_customer_and_must(aws, auth):
    auth("none")
    status, body = call(http_event("POST", "/orders", CART))
    assert (status, body["field"]) == (400, "customer_id")
    assert call(http_event("POST", "/orders", {**CART, "customer_id": "demo"}))[0] == 202


def test_a_tracking_ticket_is_issued_to_the_signed_in_caller_only(aws, auth, monkeypatch):
    from orders.domain.tracking import redeem_ticket
    from sandbox.emulator.local_aws import create_connections_table

    monkeypatch.setenv("CONNECTIONS_TABLE_NAME", create_connections_table(aws.ddb))
    auth("jwt")
    # GIVEN alice signed in: she gets a ticket that stands for her, once
    resp = api.handler(signed(http_event("POST", "/tracking/tickets"), sub="alice"), FakeLambdaContext())
    assert resp["statusCode"] == 201 and resp["headers"]["Cache-Control"] == "no-store"
    ticket = json.loads(resp["body"])["ticket"]
    store = bootstrap.container().tickets
    assert store is not None and redeem_ticket(store, ticket, __import__("time").time()) == "alice"
    # THEN a caller the authorizer names no one for gets 401, and a stack without tickets (none) 404
    assert call(http_event("POST", "/tracking/tickets"))[0] == 401
    auth("none")
    assert call(http_event("POST", "/tracking/tickets"))[0] == 404
