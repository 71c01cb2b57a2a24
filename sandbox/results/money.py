"""The money invariants of a run, counted from the customer's side: one checkout, one charge.

Three independent records meet here: the processor's ledger (what was charged), the orders table (what the
shop believes), and the clients' own log of the answers they got (sandbox/runs/locustfile.py). A checkout is
the client's Idempotency-Key; an order created without one is its own checkout.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

TERMINAL = ("PAID", "PAYMENT_FAILED")
INVARIANTS = ("checkouts_charged_twice", "charged_not_paid", "paid_not_charged", "charged_after_5xx", "not_terminal")


def final_answer(checkout: dict[str, Any]) -> int | None:
    """The status the client was left with: its last own try's (a double-submit's twin aside)."""
    own = [a for a in checkout.get("answers", []) if not a.get("twin")]
    return int(own[-1]["status"]) if own else None


def money(
    orders: list[dict[str, Any]], charged_order_ids: Iterable[str], checkouts: list[dict[str, Any]]
) -> dict[str, Any]:
    """Each invariant's count (all must be 0) and the client behaviour that tested them.

    ``charged_order_ids``: one entry per approved charge in the processor's ledger (an order twice if it
    was charged twice).
    """
    by_order = {str(o["order_id"]): o for o in orders}
    charges = Counter(str(i) for i in charged_order_ids)

    def checkout_of(order_id: str) -> str:
        return str(by_order.get(order_id, {}).get("checkout_key") or order_id)

    per_checkout: Counter[str] = Counter()
    for order_id, n in charges.items():
        per_checkout[checkout_of(order_id)] += n
    told_5xx = {c["key"] for c in checkouts if (final_answer(c) or 0) >= 500}
    answers = [a for c in checkouts for a in c.get("answers", [])]
    return {
        "checkouts_charged_twice": sum(1 for n in per_checkout.values() if n > 1),
        "charged_not_paid": sum(1 for oid in charges if by_order.get(oid, {}).get("status") != "PAID"),
        "paid_not_charged": sum(1 for o in orders if o.get("status") == "PAID" and not charges[str(o["order_id"])]),
        "charged_after_5xx": sum(1 for key in told_5xx if per_checkout[key]),
        "not_terminal": sum(1 for o in orders if o.get("status") not in (*TERMINAL, "REJECTED")),
        "clients": {
            "checkouts": len(checkouts),
            "retries": sum(max(0, len([a for a in c.get("answers", []) if not a.get("twin")]) - 1) for c in checkouts),
            "replays": sum(1 for a in answers if a.get("replayed")),
            "in_progress_409": sum(
                1
                for a in answers
                if a.get("status") == 409 and a.get("error", "request_in_progress") == "request_in_progress"
            ),
            "no_answer": sum(1 for a in answers if a.get("status") == 0),
            "double_submits": sum(1 for a in answers if a.get("twin")),
            "abandoned": sum(1 for c in checkouts if c.get("abandoned") and not 200 <= (final_answer(c) or 0) < 500),
            "final_5xx": len(told_5xx),
        },
    }


def money_bars(m: dict[str, Any]) -> list[tuple[str, int]]:
    """(bar name, count) for each invariant, in the report's words."""
    names = {
        "checkouts_charged_twice": "money: checkouts charged twice (per Idempotency-Key)",
        "charged_not_paid": "money: charged, order not PAID",
        "paid_not_charged": "money: PAID, no charge at the processor",
        "charged_after_5xx": "money: client told 5xx, checkout charged",
        "not_terminal": "money: accepted orders not terminal at the end",
    }
    return [(names[k], int(m[k])) for k in INVARIANTS]


def read_checkouts(lines: Iterable[str]) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in lines if line.strip()]


def sold_out_answers(checkouts: Iterable[dict[str, Any]], path: str) -> list[str]:
    """When each checkout on ``path`` was told "sold out" (its final answer; one per checkout)."""
    out = []
    for c in checkouts:
        if c.get("path") != path:
            continue
        told = next((a for a in c.get("answers", []) if a.get("error") == "sold_out" and a.get("at")), None)
        if told is not None:
            out.append(str(told["at"]))
    return out
