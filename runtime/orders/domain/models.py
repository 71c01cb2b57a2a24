"""Order, its items and its lifecycle, with validation that names the bad field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from orders.domain.errors import InvalidTransitionError, ValidationError

CURRENCIES = frozenset({"USD", "EUR", "GBP", "INR", "JPY", "AUD", "CAD"})
MAX_ITEMS = 50
MAX_QTY = 1000
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$")
DEFAULT_PAYMENT_TOKEN = "tok_visa"


class OrderStatus(StrEnum):
    """States of the order read model.

    PLACED -> PAYING (the payment attempt and its processor idempotency key are
    recorded before the charge) -> PAID | PAYMENT_FAILED. PLACED -> REJECTED is
    the tombstone of an order whose client was told 5xx: no worker charges it.
    """

    PLACED = "PLACED"
    PAYING = "PAYING"
    PAID = "PAID"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    REJECTED = "REJECTED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({OrderStatus.PAID, OrderStatus.PAYMENT_FAILED, OrderStatus.REJECTED})
TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PLACED: frozenset({OrderStatus.PAYING, OrderStatus.REJECTED}),
    OrderStatus.PAYING: frozenset({OrderStatus.PAID, OrderStatus.PAYMENT_FAILED}),
    OrderStatus.PAID: frozenset(),
    OrderStatus.PAYMENT_FAILED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
}


def check_transition(current: OrderStatus, target: OrderStatus) -> None:
    """Raise unless ``current -> target`` is an edge of the lifecycle."""
    if target not in TRANSITIONS[current]:
        raise InvalidTransitionError(f"{current.value} -> {target.value} is not allowed")


@dataclass(frozen=True, slots=True)
class OrderItem:
    sku: str
    qty: int
    price: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {"sku": self.sku, "qty": self.qty, "price": str(self.price)}


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A validated order as the customer placed it (before it has an id)."""

    customer_id: str
    items: tuple[OrderItem, ...]
    currency: str
    payment_token: str = DEFAULT_PAYMENT_TOKEN

    @property
    def total(self) -> Decimal:
        return sum((i.price * i.qty for i in self.items), Decimal("0")).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    customer_id: str
    items: tuple[OrderItem, ...]
    currency: str
    total: Decimal
    payment_token: str
    status: OrderStatus
    created_at: str
    updated_at: str
    payment_id: str | None = None
    failure_reason: str | None = None
    payment_key: str | None = None  # the processor idempotency key of the attempt, from PAYING on
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The public JSON shape (used by events and by GET /orders/{id})."""
        out: dict[str, Any] = {
            "order_id": self.order_id,
            "customer_id": self.customer_id,
            "items": [i.to_dict() for i in self.items],
            "currency": self.currency,
            "total": str(self.total),
            "status": self.status.value,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if self.payment_id:
            out["payment_id"] = self.payment_id
        if self.failure_reason:
            out["failure_reason"] = self.failure_reason
        return out


def _require_str(data: Mapping[str, Any], key: str, path: str) -> str:
    value = data.get(key)
    if value is None:
        raise ValidationError(path, "is required")
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ValidationError(path, "must be 1-64 characters of letters, digits and _.:@-")
    return value


def _parse_item(raw: Any, path: str) -> OrderItem:
    if not isinstance(raw, Mapping):
        raise ValidationError(path, "must be an object")
    unknown = set(raw) - {"sku", "qty", "price"}
    if unknown:
        raise ValidationError(f"{path}.{sorted(unknown)[0]}", "is not a known field")
    sku = _require_str(raw, "sku", f"{path}.sku")
    qty = raw.get("qty")
    if isinstance(qty, bool) or not isinstance(qty, int):
        raise ValidationError(f"{path}.qty", "must be an integer")
    if not 1 <= qty <= MAX_QTY:
        raise ValidationError(f"{path}.qty", f"must be between 1 and {MAX_QTY}")
    price_raw = raw.get("price")
    if isinstance(price_raw, bool) or not isinstance(price_raw, (int, float, str)):
        raise ValidationError(f"{path}.price", "must be a number")
    try:
        price = Decimal(str(price_raw))
    except InvalidOperation:
        raise ValidationError(f"{path}.price", "must be a number") from None
    if not price.is_finite() or price < 0 or price.as_tuple().exponent < -2:  # type: ignore[operator]
        raise ValidationError(f"{path}.price", "must be a non-negative amount with at most 2 decimals")
    return OrderItem(sku=sku, qty=qty, price=price)


def parse_order_request(data: Any) -> OrderRequest:
    """Validate a customer's order payload; the first problem found is raised."""
    if not isinstance(data, Mapping):
        raise ValidationError("body", "must be a JSON object")
    unknown = set(data) - {"customer_id", "items", "currency", "payment_token"}
    if unknown:
        raise ValidationError(sorted(unknown)[0], "is not a known field")
    customer_id = _require_str(data, "customer_id", "customer_id")
    items_raw = data.get("items")
    if not isinstance(items_raw, list) or not items_raw:
        raise ValidationError("items", "must be a non-empty list")
    if len(items_raw) > MAX_ITEMS:
        raise ValidationError("items", f"must hold at most {MAX_ITEMS} entries")
    items = tuple(_parse_item(raw, f"items[{n}]") for n, raw in enumerate(items_raw))
    currency = data.get("currency")
    if currency not in CURRENCIES:
        raise ValidationError("currency", f"must be one of {', '.join(sorted(CURRENCIES))}")
    token = data.get("payment_token", DEFAULT_PAYMENT_TOKEN)
    if not isinstance(token, str) or not _ID_RE.match(token):
        raise ValidationError("payment_token", "must be 1-64 characters of letters, digits and _.:@-")
    return OrderRequest(customer_id=customer_id, items=items, currency=currency, payment_token=token)


def order_from_dict(data: Mapping[str, Any]) -> Order:
    """Rebuild an order from its stored or published shape."""
    return Order(
        order_id=str(data["order_id"]),
        customer_id=str(data["customer_id"]),
        items=tuple(
            OrderItem(sku=str(i["sku"]), qty=int(i["qty"]), price=Decimal(str(i["price"]))) for i in data["items"]
        ),
        currency=str(data["currency"]),
        total=Decimal(str(data["total"])),
        payment_token=str(data.get("payment_token", DEFAULT_PAYMENT_TOKEN)),
        status=OrderStatus(data["status"]),
        created_at=str(data["created_at"]),
        updated_at=str(data.get("updated_at", data["created_at"])),
        payment_id=data.get("payment_id"),
        failure_reason=data.get("failure_reason"),
        payment_key=data.get("payment_key"),
    )
