"""Pure functions from a run's records (orders, samples, ledger) to the figures the report judges."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

TERMINAL = frozenset({"PAID", "PAYMENT_FAILED"})


def seconds(stamp: str) -> float | None:
    """Epoch seconds of an ISO timestamp, or None when it is not one (a forged or corrupt record)."""
    try:
        value = datetime.fromisoformat(stamp).timestamp()
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def rate_between(stamps: Sequence[str]) -> float:
    """Events per second of a steady stream, from the first to the last ISO timestamp (n - 1 intervals)."""
    times = sorted(t for t in (seconds(s) for s in stamps) if t is not None)
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


def completion_rate(orders: Sequence[dict[str, Any]]) -> float:
    """Orders completed per second, from the first order's start to the last one's end.

    Payments finish in waves of ``slots`` every ``latency``: timed from the first completion, the
    first wave's latency would be missing and the rate would read high by one wave.
    """
    starts = [t for t in (seconds(o["created_at"]) for o in orders) if t is not None]
    ends = [t for t in (seconds(o["updated_at"]) for o in orders) if t is not None]
    if not starts or not ends:
        return 0.0
    span = max(ends) - min(starts)
    return len(orders) / span if span > 0 else 0.0


def dlq_order_id(body: str) -> str | None:
    """The order id a DLQ message is about (a raw event, an SNS envelope or a Lambda on-failure record)."""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and "requestPayload" in data:
            data = json.loads(data["requestPayload"]["Records"][0]["Sns"]["Message"])
        if isinstance(data, dict) and data.get("Type") == "Notification":
            data = json.loads(data["Message"])
    except (TypeError, ValueError, KeyError, IndexError):
        return None
    order_id = data.get("order_id") if isinstance(data, dict) else None
    return order_id if isinstance(order_id, str) else None


def finished(row: dict[str, float]) -> float:
    """Orders done (terminal or dead-lettered) at a sample, from the queue's counts."""
    return row["accepted"] - row["visible"] - row["inflight"] - row["dlq"]


def worker_efficiency(
    rows: Sequence[dict[str, float]], *, start: float, end: float, worker_capacity: float
) -> dict[str, float] | None:
    """Orders paid per second during the drain over what the running workers' payment slots allow.

    Counted between ``start`` (the load stops) and ``end`` (the backlog is empty): orders finished in
    that window / (integral of running workers x one worker's capacity). 1.0 means every worker paid
    at its slots' limit the whole time; the machine, the emulator or idle workers show as less.
    """
    window = [r for r in rows if start <= r["t"] <= end]
    if len(window) < 2 or worker_capacity <= 0:
        return None
    done = finished(window[-1]) - finished(window[0])
    worker_seconds = sum(a["workers"] * (b["t"] - a["t"]) for a, b in itertools.pairwise(window))
    if worker_seconds <= 0:
        return None
    return {
        "paid_per_s": done / (window[-1]["t"] - window[0]["t"]),
        "allowed_per_s": worker_seconds * worker_capacity / (window[-1]["t"] - window[0]["t"]),
        "ratio": done / (worker_seconds * worker_capacity),
    }


def off_by(measured: float | None, model: float | None) -> float | None:
    """Relative difference of a measured figure from the model's (None when either is missing or 0)."""
    if measured is None or model is None or model == 0:
        return None
    return abs(measured / model - 1)
