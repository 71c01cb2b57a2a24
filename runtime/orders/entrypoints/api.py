"""HTTP API (payload v2): accept orders asynchronously, the sync baseline, and order status."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit

from orders.adapters.checkout_keys import InvalidKeyError, KeyReusedError, RequestInProgressError, check_key
from orders.bootstrap import container
from orders.domain.errors import (
    ContendedError,
    FutureSequenceError,
    OrderNotFoundError,
    PayloadTooLargeError,
    PriceChangedError,
    PublishError,
    SoldOutError,
    UnknownSkuError,
    ValidationError,
)
from orders.domain.models import Cart, Order, OrderStatus, customer_of, parse_after, parse_order_json
from orders.domain.service import Overloaded
from orders.domain.tracking import issue_ticket

logger = Logger(service="orders-api")
metrics = Metrics(namespace="FlashSaleOrders", service="orders-api")
app = APIGatewayHttpResolver()


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, separators=(",", ":")),
        headers=headers or {},
    )


class UnsupportedMediaType(Exception):
    """The request body is not declared as JSON."""


def _body() -> bytes | str:
    """The raw body, declared JSON and decoded: what the order is parsed from and a key's request compared by."""
    content_type = (app.current_event.headers or {}).get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise UnsupportedMediaType(content_type)
    raw: str | bytes | None = app.current_event.body
    if not raw:
        raise ValidationError("body", "is required")
    if app.current_event.is_base64_encoded:
        import base64
        import binascii

        try:
            raw = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError("body", "is not valid base64") from None
    return raw


@app.exception_handler(UnknownSkuError)
def _unknown_sku(exc: UnknownSkuError) -> Response:
    metrics.add_metric(name="OrdersRejected", unit=MetricUnit.Count, value=1)
    return _json(422, {"error": "unknown_sku", "field": exc.field, "sku": exc.sku, "message": exc.message})


@app.exception_handler(PriceChangedError)
def _price_changed(exc: PriceChangedError) -> Response:
    metrics.add_metric(name="OrdersRejected", unit=MetricUnit.Count, value=1)
    return _json(
        409,
        {
            "error": "price_changed",
            "sku": exc.sku,
            "price": str(exc.price),
            "currency": exc.currency,
            "message": f"{exc.sku} now costs {exc.price} {exc.currency}: confirm the new price and check out again",
        },
    )


@app.exception_handler(SoldOutError)
def _sold_out(exc: SoldOutError) -> Response:
    metrics.add_metric(name="OrdersSoldOut", unit=MetricUnit.Count, value=1)
    return _json(409, {"error": "sold_out", "sku": exc.sku, "message": f"{exc.sku} is sold out"})


@app.exception_handler(ContendedError)
def _contended(exc: ContendedError) -> Response:
    return _json(503, {"error": "unavailable", "message": "too many checkouts at once; retry"}, {"Retry-After": "1"})


@app.exception_handler(ValidationError)
def _invalid(exc: ValidationError) -> Response:
    metrics.add_metric(name="OrdersRejected", unit=MetricUnit.Count, value=1)
    return _json(400, {"error": "invalid_order", "field": exc.field, "message": exc.message})


@app.exception_handler(UnsupportedMediaType)
def _unsupported(exc: UnsupportedMediaType) -> Response:
    metrics.add_metric(name="OrdersRejected", unit=MetricUnit.Count, value=1)
    return _json(
        415, {"error": "unsupported_media_type", "message": "send the order as Content-Type: application/json"}
    )


@app.exception_handler(PayloadTooLargeError)
def _too_large(exc: PayloadTooLargeError) -> Response:
    metrics.add_metric(name="OrdersRejected", unit=MetricUnit.Count, value=1)
    return _json(413, {"error": "payload_too_large", "message": str(exc)})


@app.exception_handler(Overloaded)
def _overloaded(exc: Overloaded) -> Response:
    metrics.add_metric(name="OrdersThrottled", unit=MetricUnit.Count, value=1)
    return _json(429, {"error": "busy", "message": "too many orders waiting; retry later"}, {"Retry-After": "5"})


@app.exception_handler(PublishError)
def _unpublished(exc: PublishError) -> Response:
    logger.error("order event not published; order rejected (never charged)", extra={"reason": str(exc)})
    return _json(503, {"error": "unavailable", "message": "order not accepted; retry"}, {"Retry-After": "1"})


@app.exception_handler(InvalidKeyError)
def _bad_key(exc: InvalidKeyError) -> Response:
    return _json(400, {"error": "invalid_idempotency_key", "field": "Idempotency-Key", "message": str(exc)})


@app.exception_handler(KeyReusedError)
def _key_reused(exc: KeyReusedError) -> Response:
    return _json(
        422,
        {"error": "idempotency_key_reused", "message": "this Idempotency-Key was used with another request body"},
    )


@app.exception_handler(RequestInProgressError)
def _in_progress(exc: RequestInProgressError) -> Response:
    return _json(
        409,
        {"error": "request_in_progress", "message": "a request with this Idempotency-Key is still running; retry"},
        {"Retry-After": "1"},
    )


class Unauthenticated(Exception):
    """A route behind an authorizer reached without the caller's identity (never on a deployed stack)."""


class CustomerMismatch(Exception):
    """The body names a customer other than the signed-in caller."""


@app.exception_handler(Unauthenticated)
def _unauthenticated(exc: Unauthenticated) -> Response:
    return _json(401, {"error": "unauthenticated", "message": "sign in: this route needs the caller's identity"})


@app.exception_handler(CustomerMismatch)
def _mismatch(exc: CustomerMismatch) -> Response:
    metrics.add_metric(name="OrdersRejected", unit=MetricUnit.Count, value=1)
    return _json(
        403,
        {"error": "customer_mismatch", "message": "customer_id is the signed-in caller's: leave it out or send yours"},
    )


def _signed_in() -> str | None:
    """The caller as the authorizer identified it (apiAuth=jwt: the token's subject; iam: the principal),
    or None with apiAuth=none, where the body names the customer (a demo only)."""
    mode = container().settings.api_auth
    if mode == "none":
        return None
    authorizer = app.current_event.request_context.authorizer
    if mode == "jwt":
        claims = authorizer.jwt_claim if authorizer is not None else {}
        caller = customer_of("jwt", str(claims.get("iss", "")), str(claims.get("sub", "")))
    else:
        iam = authorizer.iam if authorizer is not None else None
        caller = customer_of("iam", "", iam.user_arn if iam is not None else "")
    if caller is None:
        raise Unauthenticated()
    return caller


def _customer(named: str) -> str:
    """The order's customer: the signed-in caller; a body may name it only as itself."""
    caller = _signed_in()
    if caller is None:
        if not named:
            raise ValidationError("customer_id", "is required (apiAuth=none: the body names the customer)")
        return named
    if named and named != caller:
        raise CustomerMismatch()
    return caller


def _owned(order_id: str) -> Order:
    """The order, if the caller may see it: its owner only (anyone else gets the answer for an unknown id)."""
    caller = _signed_in()
    order = container().service.get(order_id)
    if caller is not None and order.customer_id != caller:
        raise OrderNotFoundError(order_id)
    return order


def _checkout(route: str, work: Any) -> Response:
    """Run ``work(request, key)`` once per Idempotency-Key (when given), replaying the first answer."""
    c = container()
    key = check_key((app.current_event.headers or {}).get("idempotency-key"))
    raw = _body()
    cart = parse_order_json(raw)  # declared JSON, bounded in size, validated strictly (never a 5xx)
    cart = dataclasses.replace(cart, customer_id=_customer(cart.customer_id))
    if key is None:
        if c.settings.require_idempotency_key:
            raise InvalidKeyError("is required: send one key per checkout, the same on every retry of it")
        answer = work(cart, None)
    else:
        c.checkouts.register_lambda_context(app.lambda_context)
        body = json.loads(raw)
        answer = c.checkouts.run(
            route=route, caller=f"customer:{cart.customer_id}", key=key, body=body, work=lambda: work(cart, key)
        )
    return _json(answer["status"], answer["body"], answer.get("headers"))


def _accepted(order: Order, status: int = 202) -> dict[str, Any]:
    url = f"/orders/{order.order_id}"
    body = {"order_id": order.order_id, "status": order.status.value, "status_url": url}
    return {"status": status, "body": body, "headers": {"Location": url}}


def _accept(cart: Cart, key: str | None) -> dict[str, Any]:
    service = container().service
    order = service.accept(service.price(cart), checkout_key=key)
    metrics.add_metric(name="OrdersAccepted", unit=MetricUnit.Count, value=1)
    return _accepted(order)


def _place_and_pay(cart: Cart, key: str | None) -> dict[str, Any]:
    service = container().service
    order = service.place_and_pay(service.price(cart), checkout_key=key)
    if order.status is OrderStatus.PAID:
        metrics.add_metric(name="OrdersPaidSync", unit=MetricUnit.Count, value=1)
        return {"status": 201, "body": order.to_dict()}
    if order.status is OrderStatus.PAYMENT_FAILED:
        metrics.add_metric(name="OrdersPaymentFailed", unit=MetricUnit.Count, value=1)
        return {"status": 402, "body": order.to_dict()}
    # The payment's outcome is unknown (the processor timed out, or a write after it failed): the order
    # was handed to the workers, who look the charge up by key before charging. Never "failed, retry".
    logger.warning("sync payment outcome unknown; handed to the workers", extra={"order_id": order.order_id})
    metrics.add_metric(name="OrdersPaymentPending", unit=MetricUnit.Count, value=1)
    return _accepted(order)


@app.post("/orders")
def place_order() -> Response:
    return _checkout("POST /orders", _accept)


@app.post("/orders/sync")
def place_order_sync() -> Response:
    return _checkout("POST /orders/sync", _place_and_pay)


@app.get("/catalog")
def get_catalog() -> Response:
    """The sale page's view: every product with its price and the stock left (cached briefly: public)."""
    c = container()
    if c.service.catalog is None:
        return _json(404, {"error": "not_found", "message": "no catalog is configured"})
    cache = int(c.settings.catalog_cache_s)
    return _json(200, {"products": c.service.catalog.listing()}, {"Cache-Control": f"public, max-age={cache}"})


@app.post("/tracking/tickets")
def create_tracking_ticket() -> Response:
    """A one-minute, single-use ticket that opens one tracking WebSocket as the signed-in caller
    (apiAuth=jwt: a browser cannot send its token as a header on a WebSocket; docs/tracking.md)."""
    c = container()
    caller = _signed_in()
    if caller is None or c.tickets is None:
        return _json(404, {"error": "not_found", "message": "tracking connects without a ticket here"})
    ticket = issue_ticket(c.tickets, caller, time.time())
    return _json(201, ticket, {"Cache-Control": "no-store"})


@app.get("/orders/<order_id>")
def get_order(order_id: str) -> Response:
    try:
        order = _owned(order_id)
    except OrderNotFoundError:
        return _json(404, {"error": "not_found", "order_id": order_id})
    return _json(200, order.to_dict())


@app.get("/orders/<order_id>/events")
def get_order_events(order_id: str) -> Response:
    """The order's event log after ``?after=N`` (default 0): the HTTP form of the tracking catch-up."""
    try:
        after = parse_after(app.current_event.get_query_string_value("after", "0"))
        _owned(order_id)
        entries = container().service.events(order_id, after)
    except ValidationError as exc:
        return _json(400, {"error": "bad_request", "field": exc.field, "message": exc.message})
    except OrderNotFoundError:
        return _json(404, {"error": "not_found", "order_id": order_id})
    except FutureSequenceError as exc:
        return _json(400, {"error": "future_sequence", "message": str(exc), "last_seq": exc.last})
    last = entries[-1].seq if entries else after
    return _json(200, {"order_id": order_id, "events": [e.to_dict() for e in entries], "last_seq": last})


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("routeKey", "").startswith("POST /orders/sync"):
        container().payments.register_lambda_context(context)
    return app.resolve(event, context)
