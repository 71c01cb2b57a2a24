"""The catalog table: products and their stock shards, read through a short cache, loaded from a file.

Layout (one table, key ``sku`` + ``part``): the product item (``part = "product"``: name, price, currency,
shards) and one item per stock shard (``part = "stock#N"``: ``left``, and the counters a sale is audited
by: ``initial`` as loaded, ``sold`` as reserved, ``released`` as given back). ``sold + left = initial +
released`` holds per shard, since every write moves ``left`` and one counter together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

from orders.domain.catalog import CatalogRow, Product, Reservation, shard_stock

PRODUCT = "product"
COUNTERS = ("initial", "sold", "released", "left")


def stock_part(shard: int) -> str:
    return f"stock#{shard}"


def stock_key(sku: str, shard: int) -> dict[str, Any]:
    return {"sku": {"S": sku}, "part": {"S": stock_part(shard)}}


def reserve_update(table: str, r: Reservation) -> dict[str, Any]:
    """The transaction item that takes ``r.qty`` from one shard, only if it holds that much."""
    return {
        "Update": {
            "TableName": table,
            "Key": stock_key(r.sku, r.shard),
            "UpdateExpression": "SET #left = #left - :q ADD #sold :q",
            "ConditionExpression": "attribute_exists(#left) AND #left >= :q",
            "ExpressionAttributeNames": {"#left": "left", "#sold": "sold"},
            "ExpressionAttributeValues": {":q": {"N": str(r.qty)}},
        }
    }


def release_update(table: str, r: Reservation) -> dict[str, Any]:
    """The transaction item that gives ``r.qty`` back to its shard. Unconditional: giving stock back must
    never block an order's transition (its once-only guarantee is the order's own condition)."""
    return {
        "Update": {
            "TableName": table,
            "Key": stock_key(r.sku, r.shard),
            "UpdateExpression": "ADD #left :q, #released :q",
            "ExpressionAttributeNames": {"#left": "left", "#released": "released"},
            "ExpressionAttributeValues": {":q": {"N": str(r.qty)}},
        }
    }


def _product(item: dict[str, Any]) -> Product:
    return Product(
        sku=item["sku"]["S"],
        name=item["name"]["S"],
        price=Decimal(item["price"]["N"]),
        currency=item["currency"]["S"],
        shards=int(item["shards"]["N"]),
    )


class DynamoCatalog:
    """Products by SKU and the sale page's listing, each cached for ``cache_s``: a flash sale reads the
    same few products thousands of times a second, and a price change is seen within ``cache_s``."""

    def __init__(
        self,
        table: str,
        client_factory: Callable[[], Any],
        *,
        cache_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table, self._client_factory, self.cache_s, self._clock = table, client_factory, cache_s, clock
        self._products: dict[str, tuple[float, Product | None]] = {}
        self._listing: tuple[float, list[dict[str, Any]]] | None = None
        self._lock = threading.Lock()

    def products(self, skus: Iterable[str]) -> dict[str, Product]:
        now = self._clock()
        wanted = list(dict.fromkeys(skus))
        with self._lock:
            fresh = {
                s: self._products[s]
                for s in wanted
                if s in self._products and now - self._products[s][0] < self.cache_s
            }
        missing = [s for s in wanted if s not in fresh]
        if missing:
            found = self._fetch(missing)
            with self._lock:
                for sku in missing:
                    fresh[sku] = self._products[sku] = (now, found.get(sku))
        return {sku: product for sku, (_, product) in fresh.items() if product is not None}

    def _fetch(self, skus: Sequence[str]) -> dict[str, Product]:
        client = self._client_factory()
        out: dict[str, Product] = {}
        for start in range(0, len(skus), 100):  # BatchGetItem: at most 100 keys a call
            request: dict[str, Any] = {
                self._table: {"Keys": [{"sku": {"S": s}, "part": {"S": PRODUCT}} for s in skus[start : start + 100]]}
            }
            while request:
                resp = client.batch_get_item(RequestItems=request)
                for item in resp.get("Responses", {}).get(self._table, []):
                    product = _product(item)
                    out[product.sku] = product
                request = resp.get("UnprocessedKeys") or {}
        return out

    def listing(self) -> list[dict[str, Any]]:
        now = self._clock()
        with self._lock:
            if self._listing is not None and now - self._listing[0] < self.cache_s:
                return self._listing[1]
        listing = [
            {**s["product"].to_dict(), "left": s["left"]} for s in stock_levels(self._client_factory(), self._table)
        ]
        with self._lock:
            self._listing = (now, listing)
        return listing


def _scan(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        resp = client.scan(**kwargs)
        items += resp.get("Items", [])
        if "LastEvaluatedKey" not in resp:
            return items
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def stock_levels(client: Any, table: str) -> list[dict[str, Any]]:
    """Per SKU (sorted): its product and the sum over its shards of each counter. A scan: for the sale
    page (cached) and for audits, never on an order's path."""
    by_sku: dict[str, dict[str, Any]] = {}
    for item in _scan(client, table):
        entry = by_sku.setdefault(item["sku"]["S"], {c: 0 for c in COUNTERS} | {"shards": 0})
        if item["part"]["S"] == PRODUCT:
            entry["product"] = _product(item)
        else:
            entry["shards"] += 1
            for c in COUNTERS:
                entry[c] += int(item.get(c, {"N": "0"})["N"])
    return [{"sku": sku, **e} for sku, e in sorted(by_sku.items()) if "product" in e]


def load(client: Any, table: str, rows: Sequence[CatalogRow]) -> int:
    """Write a validated catalog: each product, and its stock split over its shards with fresh counters
    (``initial`` = the shard's stock, ``sold`` = ``released`` = 0). Loading sets up a sale: run mid-sale, it
    restarts the stock and its counts. Shards beyond a product's new count are kept at 0 left, so an order
    holding stock there can still give it back. Returns the items written."""
    items: list[dict[str, Any]] = []
    existing = {(i["sku"]["S"], i["part"]["S"]) for i in _scan(client, table) if i["part"]["S"] != PRODUCT}
    for row in rows:
        p = row.product
        items.append(
            {
                "sku": {"S": p.sku},
                "part": {"S": PRODUCT},
                "name": {"S": p.name},
                "price": {"N": str(p.price)},
                "currency": {"S": p.currency},
                "shards": {"N": str(p.shards)},
            }
        )
        for shard, stock in enumerate(shard_stock(row.stock, p.shards)):
            items.append(_shard_item(p.sku, shard, stock))
        for sku, part in sorted(existing):
            shard = int(part.split("#", 1)[1])
            if sku == p.sku and shard >= p.shards:
                items.append(_shard_item(sku, shard, 0))
    for start in range(0, len(items), 25):  # BatchWriteItem: at most 25 puts a call
        request: dict[str, Any] = {table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]}
        while request:
            resp = client.batch_write_item(RequestItems=request)
            request = resp.get("UnprocessedItems") or {}
    return len(items)


def _shard_item(sku: str, shard: int, stock: int) -> dict[str, Any]:
    return {
        **stock_key(sku, shard),
        "left": {"N": str(stock)},
        "initial": {"N": str(stock)},
        "sold": {"N": "0"},
        "released": {"N": "0"},
    }
