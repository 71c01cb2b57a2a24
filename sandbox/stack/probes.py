"""Reading the deployed resources' state: queue depths, the orders table, the dead-letter queue."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandbox.emulator.queues import Depth


def read_orders(ddb: Any, table: str) -> list[dict[str, Any]]:
    items, kwargs = [], {"TableName": table}
    while True:
        resp = ddb.scan(**kwargs)
        items += [{k: next(iter(v.values())) for k, v in item.items()} for item in resp["Items"]]
        if "LastEvaluatedKey" not in resp:
            return items
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def dlq_bodies(sqs: Any, url: str) -> list[str]:
    """Every message body the DLQ holds; each stays hidden for 30 s so the scan sees it once."""
    bodies: list[str] = []
    seen: set[str] = set()
    for _ in range(500):
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages", [])
        fresh = [m for m in msgs if m["MessageId"] not in seen]
        if not fresh:
            break
        seen.update(m["MessageId"] for m in fresh)
        bodies += [m["Body"] for m in fresh]
    return bodies


def wait_drained(backlog: Callable[[], Depth], timeout_s: float, progress: Callable[[str], None] | None = None) -> bool:
    """Wait until ``backlog`` reads empty (True) or ``timeout_s`` passes (False); every 5 s a progress line."""
    deadline = time.monotonic() + timeout_s
    last = time.monotonic()
    while time.monotonic() < deadline:
        depth = backlog()
        if depth.total == 0:
            return True
        if progress is not None and time.monotonic() - last > 5:
            progress(f"  backlog {depth.total} ({depth.visible} waiting, {depth.in_flight} in flight)")
            last = time.monotonic()
        time.sleep(0.25)
    return backlog().total == 0


def charged_order_ids(path: Path) -> list[str]:
    """One order id per approved charge in the processor's ledger."""
    from orders.adapters.ledger import SqliteLedger

    return [e.order_id for e in SqliteLedger(path).entries() if e.approved] if path.exists() else []


def read_ledger(path: Path) -> dict[str, int]:
    from orders.adapters.ledger import SqliteLedger, summarize

    if not path.exists():
        return {"charges": 0, "declines": 0, "replays": 0, "double_charges": 0}
    return summarize(SqliteLedger(path).entries()).to_dict()
