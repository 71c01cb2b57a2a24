"""The stock of a run, per SKU: never oversold, and every unit accounted for.

Two independent records meet here: the catalog's shard counters (what the stock says: initial, sold,
released, left) and the orders table (what the shop sold: units held by every order that did not fail).
``oversold`` is counted from the orders against the stock loaded, so it can fail where the counter that
enforces it says all is well.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

FAILED = ("PAYMENT_FAILED", "REJECTED")  # orders that gave their stock back


def _lines(order: dict[str, Any]) -> list[tuple[str, int]]:
    """(sku, qty) of an order as the probes read it (one level of DynamoDB types removed)."""
    out = []
    for line in order.get("items") or []:
        item = line.get("M", line)
        sku, qty = item.get("sku"), item.get("qty")
        sku = sku.get("S") if isinstance(sku, dict) else sku
        qty = qty.get("N") if isinstance(qty, dict) else qty
        out.append((str(sku), int(qty or 0)))
    return out


def stock(
    levels: list[dict[str, Any]], orders: list[dict[str, Any]], checkouts: list[dict[str, Any]]
) -> dict[str, Any]:
    """Per SKU: the counters, the units the orders hold, ``oversold`` and the sold-out answers clients got."""
    held: Counter[str] = Counter()
    for order in orders:
        if order.get("status") not in FAILED:
            for sku, qty in _lines(order):
                held[sku] += qty
    sold_out: Counter[str] = Counter()
    for c in checkouts:
        for answer in c.get("answers", []):
            if answer.get("error") == "sold_out":
                sold_out[str(answer.get("sku") or "?")] += 1
    out: dict[str, Any] = {}
    for level in levels:
        sku = level["sku"]
        out[sku] = {
            "initial": level["initial"],
            "sold": level["sold"],
            "released": level["released"],
            "left": level["left"],
            "shards": level["shards"],
            "held_by_orders": held[sku],
            "oversold": max(0, held[sku] - level["initial"]),
            "balanced": level["sold"] + level["left"] == level["initial"] + level["released"],
            "sold_out_answers": sold_out[sku],
        }
    return out


def stock_bars(per_sku: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(name, target, measured, met): nothing oversold, and sold + left = initial + released for every SKU."""
    oversold = sum(s["oversold"] for s in per_sku.values())
    unbalanced = [sku for sku, s in per_sku.items() if not s["balanced"]]
    return [
        ("stock: units oversold (orders holding more than the stock loaded)", "0", str(oversold), oversold == 0),
        (
            "stock: sold + left = initial + released, every SKU",
            f"{len(per_sku)} of {len(per_sku)}",
            f"{len(per_sku) - len(unbalanced)} of {len(per_sku)}",
            not unbalanced and bool(per_sku),
        ),
    ]
