"""Order, its items and its lifecycle, with validation that names the bad field."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from orders.domain.catalog import MINOR_UNITS, Reservation
from orders.domain.errors import InvalidTransitionError, PayloadTooLargeError, ValidationError

CURRENCIES = frozenset(MINOR_UNITS)
MAX_ITEMS = 50
MAX_QTY = 100  # per line: a flash sale's basket, not a wholesale order
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
class CartLine:
    """A line as the client sent it: ``price`` is what it displayed (optional), never what is charged."""

    sku: str
    qty: int
    price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Cart:
    """A validated checkout request, not yet priced: the catalog prices it (OrderService.price).
    ``customer_id``: as the body named it ("" when it named none); the API replaces it with the caller."""

    customer_id: str
    lines: tuple[CartLine, ...]
    currency: str | None = None
    payment_token: str = DEFAULT_PAYMENT_TOKEN


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order priced by the server (before it has an id). ``shards``: per SKU, how many stock shards
    hold it; a SKU listed there is reserved when the order is created."""

    customer_id: str
    items: tuple[OrderItem, ...]
    currency: str
    payment_token: str = DEFAULT_PAYMENT_TOKEN
    shards: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        places = Decimal(1).scaleb(-MINOR_UNITS.get(self.currency, 2))
        return sum((i.price * i.qty for i in self.items), Decimal("0")).quantize(places, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One transition in the order's event log; ``seq`` is its 1-based position (per order, gap-free)."""

    seq: int
    status: OrderStatus
    occurred_at: str
    detail: Mapping[str, str] = field(default_factory=dict)  # payment_id or failure_reason, where the state has one

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "status": self.status.value, "occurred_at": self.occurred_at, **self.detail}

    def stored(self) -> dict[str, Any]:
        """The stored shape: position in the list is the sequence."""
        return {"status": self.status.value, "occurred_at": self.occurred_at, **self.detail}


LOG_DETAIL = ("payment_id", "failure_reason")


def validate_id(value: Any, field_name: str) -> str:
    """An id as the API accepts it (customer ids, order ids): 1-64 ASCII letters, digits and _.:@-."""
    if not isinstance(value, str) or not re.match(_ID_PATTERN, value):
        raise ValidationError(field_name, _ID_MESSAGE)
    return value


def customer_of(kind: str, issuer: str, subject: str) -> str | None:
    """A signed-in caller as a customer id: a token's subject as it is when it is a valid id (a Cognito
    sub is a UUID), else a stable digest of issuer and subject (``jwt:...``); an IAM principal's ARN as
    ``iam:`` and a digest (ARNs hold characters ids may not). None when there is no identity."""
    import hashlib

    if not subject:
        return None
    if kind == "jwt" and re.match(_ID_PATTERN, subject):
        return subject
    return f"{kind}:{hashlib.sha256(f'{issuer}|{subject}'.encode()).hexdigest()[:40]}"


MAX_SEQUENCE = 1_000_000  # far beyond any order's transitions; bounds what a client may send


def parse_after(value: Any, field_name: str = "after") -> int:
    """A client's last seen sequence number: a non-negative integer (JSON int or ASCII digits)."""
    if isinstance(value, bool):
        raise ValidationError(field_name, "must be a non-negative integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 7:
        number = int(value)
    else:
        raise ValidationError(field_name, "must be a non-negative integer")
    if not 0 <= number <= MAX_SEQUENCE:
        raise ValidationError(field_name, f"must be between 0 and {MAX_SEQUENCE}")
    return number


def log_entry(seq: int, status: OrderStatus, at: str, attrs: Mapping[str, Any]) -> LogEntry:
    return LogEntry(seq, status, at, {k: str(attrs[k]) for k in LOG_DETAIL if attrs.get(k)})


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
    checkout_key: str | None = None  # the client's Idempotency-Key of the checkout that created the order
    reservations: tuple[Reservation, ...] = ()  # the stock it holds, per shard (given back if it fails)
    extra: Mapping[str, Any] = field(default_factory=dict)
    log: tuple[LogEntry, ...] = ()  # every transition, in order, written with it (conditionally)

    @property
    def seq(self) -> int:
        """The sequence number of the order's last transition (0 for an order stored before the log)."""
        return len(self.log)

    def events_after(self, after: int) -> tuple[LogEntry, ...]:
        return self.log[max(0, after) :]

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
            "seq": self.seq,
        }
        if self.payment_id:
            out["payment_id"] = self.payment_id
        if self.failure_reason:
            out["failure_reason"] = self.failure_reason
        if self.checkout_key:
            out["checkout_key"] = self.checkout_key
        return out


_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}\Z"  # ASCII only; \Z: no trailing newline slips through
_PRICE_RE = re.compile(r"\d{1,8}(\.\d{1,2})?", re.ASCII)  # plain ASCII digits, no sign, no exponent
MAX_BODY_BYTES = 16 * 1024
_ID_MESSAGE = "must be 1-64 characters of letters, digits and _.:@-"


def _price(value: Any) -> Decimal:
    """A displayed price as the customer sent it: a JSON number (parsed as Decimal, never float) or a
    string of ASCII digits, at most 2 decimals. ``1e2`` and ``19.999999999999999`` are refused, not read."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise ValueError("must be a number")
    text = str(value)
    if not _PRICE_RE.fullmatch(text):
        raise ValueError("must be a non-negative amount of up to 8 digits with at most 2 decimals")
    return Decimal(text)


def _validator() -> Any:
    """The request schema as pydantic's core validator, built on first use.

    pydantic-core is pydantic v2's validation engine; using its schema directly rather than
    ``BaseModel`` classes validates the same way at a third of the import and build cost,
    which a Lambda cold start pays on its first order.
    """
    global _VALIDATOR
    if _VALIDATOR is None:
        from pydantic_core import SchemaValidator, core_schema

        def ident() -> Any:
            return core_schema.str_schema(pattern=_ID_PATTERN, strict=True, regex_engine="python-re")

        def field(schema: Any, required: bool = True) -> Any:
            return core_schema.typed_dict_field(schema, required=required)

        item = core_schema.typed_dict_schema(
            {
                "sku": field(ident()),
                "qty": field(core_schema.int_schema(ge=1, le=MAX_QTY, strict=True)),
                "price": field(core_schema.no_info_plain_validator_function(_price), required=False),
            },
            extra_behavior="forbid",
        )
        request = core_schema.typed_dict_schema(
            {
                "customer_id": field(ident(), required=False),
                "items": field(core_schema.list_schema(item, min_length=1, max_length=MAX_ITEMS)),
                "currency": field(core_schema.literal_schema(sorted(CURRENCIES)), required=False),
                "payment_token": field(
                    core_schema.with_default_schema(ident(), default=DEFAULT_PAYMENT_TOKEN), required=False
                ),
            },
            extra_behavior="forbid",
        )
        _VALIDATOR = SchemaValidator(request)
    return _VALIDATOR


_VALIDATOR: Any = None


def _field(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def _message(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind in ("string_pattern_mismatch", "string_type") and error["loc"] and error["loc"][-1] != "currency":
        return _ID_MESSAGE
    if kind == "literal_error":
        return f"must be one of {', '.join(sorted(CURRENCIES))}"
    if kind in ("json_invalid", "json_type"):
        return "is not valid JSON"
    if kind in ("model_type", "dict_type"):
        return "must be a JSON object"
    msg = str(error.get("msg", "is invalid"))
    return msg.removeprefix("Value error, ")


def _to_cart(data: dict[str, Any]) -> Cart:
    seen: set[str] = set()
    for n, item in enumerate(data["items"]):
        if item["sku"] in seen:
            raise ValidationError(f"items[{n}].sku", "appears twice in the order: send one line per SKU")
        seen.add(item["sku"])
    return Cart(
        customer_id=data.get("customer_id", ""),
        lines=tuple(CartLine(sku=i["sku"], qty=i["qty"], price=i.get("price")) for i in data["items"]),
        currency=data.get("currency"),
        payment_token=data.get("payment_token", DEFAULT_PAYMENT_TOKEN),
    )


def _validated(parse: Any) -> Cart:
    from pydantic_core import ValidationError as PydanticError

    try:
        return _to_cart(parse())
    except PydanticError as exc:
        first = exc.errors(include_url=False)[0]
        loc = tuple(first.get("loc", ()))
        if first.get("type") in ("json_invalid", "json_type"):
            loc = ()
        raise ValidationError(_field(loc), _message(dict(first))) from None
    except RecursionError:
        raise ValidationError("body", "is nested too deeply") from None


def parse_order_request(data: Any) -> Cart:
    """Validate a customer's order payload (already decoded); the first problem found is raised."""
    return _validated(lambda: _validator().validate_python(data))


def decode_json(raw: str | bytes) -> Any:
    """A request body as JSON, numbers with a fraction or exponent as Decimal (never float); NaN and
    Infinity refused. Depth is bounded by the interpreter (RecursionError: refused by the caller)."""

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON value")

    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=constant)
    except RecursionError:
        raise ValidationError("body", "is nested too deeply") from None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValidationError("body", "is not valid JSON") from None


def parse_order_json(raw: str | bytes) -> Cart:
    """Validate a request body as sent: size bound, JSON with Decimal numbers, strict types."""
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"body is larger than {MAX_BODY_BYTES} bytes")
    data = decode_json(raw)
    return _validated(lambda: _validator().validate_python(data))


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
        checkout_key=data.get("checkout_key"),
        reservations=tuple(Reservation.from_dict(r) for r in data.get("reservations") or ()),
        log=tuple(
            LogEntry(
                seq=n,
                status=OrderStatus(e["status"]),
                occurred_at=str(e["occurred_at"]),
                detail={k: str(e[k]) for k in LOG_DETAIL if e.get(k)},
            )
            for n, e in enumerate(data.get("log") or (), start=1)
        ),
    )
