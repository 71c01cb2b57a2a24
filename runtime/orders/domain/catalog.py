"""What a sale sells: products with a price and stock, and how a cart becomes a priced order.

The server prices every order from the catalog, in Decimal from the JSON text on (a price never passes
through float), in the currency's minor units; the client may send the price it displayed, and a price
that differs is refused with the current one. Stock is split over shards per SKU so a hot SKU is not one
DynamoDB item (about 1,000 writes/s per partition): a reservation takes one shard's stock, picked at
random, and falls over to the others before the answer is "sold out".
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from orders.domain.errors import OrderError, PriceChangedError, UnknownSkuError, ValidationError

# Digits after the decimal point per currency (ISO 4217). Zero-decimal currencies are charged in whole units.
MINOR_UNITS: Mapping[str, int] = {"USD": 2, "EUR": 2, "GBP": 2, "INR": 2, "JPY": 0, "AUD": 2, "CAD": 2}
# The largest amount a charge may carry, in minor units: eight digits (Stripe, "Supported currencies",
# minimum and maximum charge amounts: https://docs.stripe.com/currencies, read Dec 2026). An order above
# it could never be charged, so it is refused before anything is written.
MAX_CHARGE_MINOR = 99_999_999
MAX_SHARDS = 100  # a reservation falls over shard by shard: bounded work before "sold out"
MAX_STOCK = 10_000_000
_SKU = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}", re.ASCII)
_AMOUNT = re.compile(r"\d{1,8}(\.\d{1,2})?", re.ASCII)  # plain ASCII digits: no sign, exponent or space


def minor_units(currency: str) -> int:
    return MINOR_UNITS[currency]


def amount(text: Any, currency: str, field: str) -> Decimal:
    """A money amount as JSON text gives it (a string, or a number parsed as Decimal, never float), with at
    most the currency's minor units: ``1e2``, ``19.999`` and ``1.50`` in JPY are refused, not rounded."""
    if isinstance(text, bool) or not isinstance(text, (str, int, Decimal)):
        raise ValidationError(field, "must be an amount (a JSON string or number of plain digits)")
    raw = str(text)
    if not _AMOUNT.fullmatch(raw):
        raise ValidationError(field, "must be a non-negative amount of up to 8 digits with at most 2 decimals")
    value = Decimal(raw)
    places = minor_units(currency)
    if value != value.quantize(Decimal(1).scaleb(-places)):
        raise ValidationError(field, f"{currency} has {places} decimal places")
    return value


def to_minor(value: Decimal, currency: str) -> int:
    return int(value.scaleb(minor_units(currency)))


@dataclass(frozen=True, slots=True)
class Product:
    """One SKU on sale. ``shards``: how many items its stock is split over (set when it is loaded)."""

    sku: str
    name: str
    price: Decimal
    currency: str
    shards: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"sku": self.sku, "name": self.name, "price": str(self.price), "currency": self.currency}


@dataclass(frozen=True, slots=True)
class Reservation:
    """``qty`` of ``sku`` taken from stock shard ``shard`` when the order was created (given back from the
    same shard, once, if the order ends PAYMENT_FAILED or REJECTED)."""

    sku: str
    shard: int
    qty: int

    def to_dict(self) -> dict[str, Any]:
        return {"sku": self.sku, "shard": self.shard, "qty": self.qty}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reservation:
        return cls(sku=str(data["sku"]), shard=int(data["shard"]), qty=int(data["qty"]))


@dataclass(frozen=True, slots=True)
class CatalogRow:
    """A product as a catalog file sets it up: its price and the stock put on sale."""

    product: Product
    stock: int


def shard_stock(stock: int, shards: int) -> list[int]:
    """Stock split as evenly as it goes: the first ``stock % shards`` shards hold one more."""
    base, extra = divmod(stock, shards)
    return [base + (1 if n < extra else 0) for n in range(shards)]


def price_cart(lines: Iterable[Any], products: Mapping[str, Product], currency: str | None) -> tuple[str, Decimal]:
    """Check a cart against the catalog: (currency, total). ``lines`` carry sku, qty and an optional
    displayed ``price``. Raises UnknownSkuError, PriceChangedError or ValidationError (mixed currencies,
    a total no processor takes)."""
    total = Decimal(0)
    chosen = currency
    for n, line in enumerate(lines):
        product = products.get(line.sku)
        if product is None:
            raise UnknownSkuError(line.sku, f"items[{n}].sku")
        if chosen is None:
            chosen = product.currency
        elif product.currency != chosen:
            raise ValidationError(f"items[{n}].sku", f"is sold in {product.currency}, the order is in {chosen}")
        if line.price is not None and line.price != product.price:
            raise PriceChangedError(product.sku, product.price, product.currency)
        total += product.price * line.qty
    if chosen is None:
        raise ValidationError("items", "must not be empty")
    if to_minor(total, chosen) > MAX_CHARGE_MINOR:
        raise ValidationError("items", f"the total {total} {chosen} is above what one charge may carry")
    if total <= 0:
        raise ValidationError("items", "the total must be above zero")
    return chosen, total


class CatalogFileError(OrderError):
    """A catalog file has bad rows: every problem, one line each; nothing was loaded."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_catalog(text: str | bytes, *, shards: int) -> list[CatalogRow]:
    """A catalog file (docs/catalog.md): ``{"products": [{"sku", "name", "price", "currency", "stock"}]}``.

    Prices are read from the JSON text as Decimal. Every bad row is reported (CatalogFileError), so a file
    is loaded whole or not at all.
    """
    if not 1 <= shards <= MAX_SHARDS:
        raise CatalogFileError([f"shards: must be 1-{MAX_SHARDS}, got {shards}"])
    try:
        data = json.loads(text, parse_float=Decimal)
    except (ValueError, RecursionError) as exc:
        raise CatalogFileError([f"not valid JSON: {exc}"]) from None
    rows = data.get("products") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise CatalogFileError(['the file must be {"products": [...]} with at least one product'])
    out: list[CatalogRow] = []
    problems: list[str] = []
    seen: set[str] = set()
    for n, row in enumerate(rows):
        try:
            out.append(_row(row, seen, shards))
        except ValidationError as exc:
            problems.append(f"products[{n}]{'.' if exc.field else ''}{exc.field}: {exc.message}")
    if problems:
        raise CatalogFileError(problems)
    return out


def _row(row: Any, seen: set[str], shards: int) -> CatalogRow:
    if not isinstance(row, dict):
        raise ValidationError("", "must be an object")
    unknown = set(row) - {"sku", "name", "price", "currency", "stock"}
    if unknown:
        raise ValidationError(sorted(unknown)[0], "is not a known field")
    sku = row.get("sku")
    if not isinstance(sku, str) or not _SKU.fullmatch(sku):
        raise ValidationError("sku", "must be 1-64 characters of letters, digits and _.:@-")
    if sku in seen:
        raise ValidationError("sku", f"{sku} appears twice")
    seen.add(sku)
    name = row.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 200:
        raise ValidationError("name", "must be 1-200 characters")
    currency = row.get("currency")
    if not isinstance(currency, str) or currency not in MINOR_UNITS:
        raise ValidationError("currency", f"must be one of {', '.join(sorted(MINOR_UNITS))}")
    try:
        price = amount(row.get("price"), currency, "price")
    except InvalidOperation:
        raise ValidationError("price", "is not an amount") from None
    if price <= 0:
        raise ValidationError("price", "must be above zero (nothing is sold for free)")
    stock = row.get("stock")
    if isinstance(stock, bool) or not isinstance(stock, int) or not 0 <= stock <= MAX_STOCK:
        raise ValidationError("stock", f"must be a whole number 0-{MAX_STOCK}")
    return CatalogRow(Product(sku=sku, name=name.strip(), price=price, currency=currency, shards=shards), stock)
