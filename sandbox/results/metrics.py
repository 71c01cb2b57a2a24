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


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))]


def tracking_summary(sessions: Sequence[dict[str, Any]], final_seq: dict[str, int]) -> dict[str, Any]:
    """What the tracking clients saw, against each order's log as the table holds it at the end.

    ``missed_after_reconnect``: sequence numbers in the order's log that a client which reconnected
    never received (the bar is 0); sessions that gave up before the order finished are counted as
    ``timed_out`` and judged on what the log held up to the last sequence they saw. ``push_latency_ms``:
    from the PAID transition's write (its ``occurred_at``) to a live frame arriving, never a catch-up one.
    """
    latencies: list[float] = []
    missed_after = missed_all = 0
    for s in sessions:
        seen = set(s["seen"])
        last = final_seq.get(s["order_id"], 0) if not s.get("timed_out") else max(seen, default=0)
        missing = len(set(range(1, last + 1)) - seen)
        missed_all += missing
        if s["reconnected"]:
            missed_after += missing
        for f in s["frames"]:
            written = seconds(str(f["occurred_at"]))
            if f["live"] and f["status"] == "PAID" and written is not None:
                latencies.append((float(f["at"]) - written) * 1000)
    return {
        "clients": len(sessions),
        "reconnects": sum(int(s["reconnects"]) for s in sessions),
        "missed_after_reconnect": missed_after,
        "missed": missed_all,
        "duplicates": sum(int(s["duplicates"]) for s in sessions),
        "resyncs": sum(int(s["resyncs"]) for s in sessions),
        "errors": sum(int(s["errors"]) for s in sessions),
        "timed_out": sum(1 for s in sessions if s.get("timed_out")),
        "push_latency_ms": {
            "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99),
            "samples": len(latencies),
        },
    }
