"""A run's summary from what it measured: pure functions of their arguments."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from planner.config import AppConfig, context_of
from planner.model import Timing, Workload, simulate
from sandbox.results import metrics

if TYPE_CHECKING:
    from sandbox.runs.chaos import ChaosRecord


def classify_dlq(bodies: list[str], is_poison: Callable[[str], bool]) -> tuple[set[str], int, int]:
    """Order ids of the good orders among a DLQ's bodies, how many are a fault harness's poison, and how
    many others name no order."""
    ids: set[str] = set()
    poison = unnamed = 0
    for body in bodies:
        if is_poison(body):
            poison += 1
        elif (order_id := metrics.dlq_order_id(body)) is None:
            unnamed += 1
        else:
            ids.add(order_id)
    return ids, poison, unnamed


@dataclass(frozen=True)
class RunSetup:
    """What a run deployed and asked of it (sandbox seconds unless named _real)."""

    compute: str
    scenario: str
    time_scale: float
    users: int
    phase_s: float
    config: AppConfig
    workload: Workload  # the model of this deployment, in sandbox time
    timing: Timing
    slots: int  # the payment client's concurrent payments
    sync_latency_s: float  # one payment, in sandbox time


@dataclass(frozen=True)
class Timeline:
    """When each phase began and ended, in seconds after ``t0_wall``."""

    t0_wall: float
    async_start_wall: str  # ISO stamp: orders created before it came through the sync checkout
    sync_start: float
    sync_end: float
    async_start: float
    load_end: float
    drained: float

    def as_dict(self) -> dict[str, float]:
        keys = ("sync_start", "sync_end", "async_start", "load_end", "drained")
        return {key: getattr(self, key) for key in keys}


@dataclass(frozen=True)
class Observed:
    """What the run measured: the orders table, the samples, Locust's answers, the DLQ and the ledger."""

    orders: list[dict[str, Any]]
    rows: list[dict[str, float]]
    accepted: int
    rejected: int
    async_stats: dict[str, Any]
    sync_stats: dict[str, Any]
    dead: set[str]  # order ids of good orders in the DLQ
    unnamed_in_dlq: int
    end_backlog: int
    drained: bool
    peak_workers: int
    ledger: dict[str, int]
    # When the async sale's shoppers were told "sold out": answers too, at the API's pace (ISO stamps)
    sold_out_at: list[str] = field(default_factory=list)


def _split_orders(seen: Observed, t: Timeline) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(async, sync) orders; REJECTED ones are left out: their client was told 5xx."""
    placed = [o for o in seen.orders if o.get("status") != "REJECTED"]
    stamp = t.async_start_wall
    return (
        [o for o in placed if str(o.get("created_at", "")) >= stamp],
        [o for o in placed if str(o.get("created_at", "")) < stamp],
    )


def _arrivals(async_orders: list[dict[str, Any]], t0_wall: float) -> list[float]:
    return [t - t0_wall for t in (metrics.seconds(o["created_at"]) for o in async_orders) if t is not None]


def _model(setup: RunSetup, t: Timeline, arrivals: list[float]) -> dict[str, Any]:
    """The planner's prediction of this run: it sees only the arrival log, the deployed config and the
    emulator's request time timed before the sale, never the drain it predicts."""
    predicted = simulate(setup.workload, arrivals, setup.timing, load_end_s=t.load_end) if arrivals else None
    first_out = predicted.first_scale_out_s if predicted else None
    return {
        "peak_backlog": predicted.peak_backlog if predicted else 0,
        "backlog_at_load_end": predicted.backlog_at_load_end if predicted else 0,
        "drain_seconds": predicted.drain_seconds if predicted else 0.0,
        "peak_workers": predicted.peak_workers if predicted else 0,
        "first_scale_out_s": first_out - t.async_start if first_out is not None else None,
        "wait_p50_s": predicted.wait_percentile(50) if predicted else 0.0,
        "wait_p99_s": predicted.wait_percentile(99) if predicted else 0.0,
        "worker_capacity_per_s": setup.workload.worker_capacity_per_s,
        "worker_capacity_with_requests_per_s": setup.workload.worker_capacity_with_requests_per_s(setup.timing),
        "series": _series(predicted) if predicted else None,
        "inputs": {"arrivals": len(arrivals), "workload": setup.workload.__dict__, "timing": setup.timing.__dict__},
    }


MAX_SERIES_POINTS = 400  # the model's timeline in summary.json, for the charts: enough to draw, small to keep


def _series(predicted: Any) -> dict[str, list[float]]:
    """The model's backlog, in-flight and workers over the run's seconds (the charts draw them over the
    measured ones), thinned to at most MAX_SERIES_POINTS."""
    step = max(1, len(predicted.times) // MAX_SERIES_POINTS)
    pick = range(0, len(predicted.times), step)
    return {
        "t": [round(predicted.times[i], 2) for i in pick],
        "visible": [predicted.visible[i] for i in pick],
        "inflight": [predicted.inflight[i] for i in pick],
        "workers": [predicted.workers[i] for i in pick],
    }


def _sync(setup: RunSetup, seen: Observed, sync_orders: list[dict[str, Any]]) -> dict[str, Any]:
    done = [o for o in sync_orders if o["status"] in metrics.TERMINAL]
    rate, k = metrics.completion_rate(done), setup.time_scale
    p50, p99 = seen.sync_stats["p50_ms"], seen.sync_stats["p99_ms"]
    return {
        "orders": len(done),
        "throughput_per_s": rate,
        "throughput_per_s_real": rate / k,
        "latency_ms": {"p50": p50, "p99": p99},
        "latency_ms_real": {"p50": p50 * k, "p99": p99 * k},
        # Each API environment pays one order at a time: users in flight / latency (on AWS too).
        "limit_per_s": setup.users / setup.sync_latency_s,
        "one_client_limit_per_s": setup.slots / setup.sync_latency_s,  # the source's one server: slots / latency
    }


def _waits(async_orders: list[dict[str, Any]]) -> dict[str, float]:
    waits = sorted(
        e - s
        for o in async_orders
        if o["status"] == "PAID"
        for s, e in [(metrics.seconds(o["created_at"]), metrics.seconds(o["updated_at"]))]
        if s is not None and e is not None
    )
    return {
        "p50": waits[len(waits) // 2] if waits else 0.0,
        "p99": waits[min(len(waits) - 1, int(0.99 * len(waits)))] if waits else 0.0,
    }


def _outcomes(async_orders: list[dict[str, Any]], seen: Observed) -> dict[str, Any]:
    lost = [o for o in async_orders if o["status"] not in metrics.TERMINAL and o["order_id"] not in seen.dead]
    return {
        "accepted": seen.accepted,
        "rejected": seen.rejected,
        "processed": sum(1 for o in async_orders if o["status"] in metrics.TERMINAL),
        "paid": sum(1 for o in async_orders if o["status"] == "PAID"),
        "payment_failed": sum(1 for o in async_orders if o["status"] == "PAYMENT_FAILED"),
        "dead_lettered": len(seen.dead),
        "dlq_messages_without_order": seen.unnamed_in_dlq,
        "lost": len(lost),
        "charges": seen.ledger["charges"],
        "double_charges": seen.ledger["double_charges"],
        "charge_replays": seen.ledger["replays"],
    }


def summarize(setup: RunSetup, t: Timeline, seen: Observed) -> dict[str, Any]:
    """The run's figures, and the model's prediction of it from its arrival log, side by side."""
    async_orders, sync_orders = _split_orders(seen, t)
    sync = _sync(setup, seen, sync_orders)
    accept_rate = metrics.rate_between([o["created_at"] for o in async_orders])
    # A scarce SKU sells out mid-sale: "sold out" is the API keeping up as much as "accepted" is.
    answer_rate = metrics.rate_between([*(o["created_at"] for o in async_orders), *seen.sold_out_at])
    arrivals = _arrivals(async_orders, t.t0_wall)
    drain_s = t.drained - t.load_end if seen.end_backlog else 0.0
    return {
        "compute": setup.compute,
        "scenario": setup.scenario,
        "time_scale": setup.time_scale,
        "users": setup.users,
        "phase_seconds": setup.phase_s,
        "config": context_of(setup.config),
        **_outcomes(async_orders, seen),
        "accept_latency_ms": {"p50": seen.async_stats["p50_ms"], "p99": seen.async_stats["p99_ms"]},
        "sync": sync,
        "async_accept_rate_per_s": accept_rate,
        "async_answer_rate_per_s": answer_rate,
        "sold_out_answers": len(seen.sold_out_at),
        "async_to_sync_ratio_real": (accept_rate / sync["throughput_per_s_real"] if sync["throughput_per_s"] else None),
        "peak_queue_depth": int(max((r["visible"] for r in seen.rows), default=0)),
        "backlog_at_load_end": seen.end_backlog,
        "drain_seconds": drain_s,
        "drain_seconds_real": drain_s * setup.time_scale,
        "drained": seen.drained,
        "max_workers": seen.peak_workers,
        "first_scale_out_s": _first_scale_out(seen.rows, t.async_start),
        "wait_s": _waits(async_orders),
        "worker_efficiency": _efficiency(setup, t, seen),
        "model": _model(setup, t, arrivals),
        "arrivals_s": [round(a, 3) for a in sorted(arrivals)],
        "timeline": t.as_dict(),
    }


def _efficiency(setup: RunSetup, t: Timeline, seen: Observed) -> dict[str, float] | None:
    """The drain's paid/s over what the running workers' slots allow with the request time the model
    gives each record and invocation (timed before the sale, at an idle emulator): below 1 when workers
    idle, pay slower than their slots, or the emulator queues their requests under load.
    ``ratio_payments_only`` is the same over the slots' limit on payments alone (the AWS figure)."""
    with_requests = setup.workload.worker_capacity_with_requests_per_s(setup.timing)
    eff = metrics.worker_efficiency(seen.rows, start=t.load_end, end=t.drained, worker_capacity=with_requests)
    if eff is None:
        return None
    eff["ratio_payments_only"] = eff["ratio"] * with_requests / setup.workload.worker_capacity_per_s
    return eff


def _first_scale_out(rows: list[dict[str, float]], since: float) -> float | None:
    """Seconds from the start of the async load to the first sample with more workers than before it."""
    before = [r["workers"] for r in rows if r["t"] <= since]
    base = before[-1] if before else 0.0
    for r in rows:
        if r["t"] > since and r["workers"] > base:
            return r["t"] - since
    return None


def chaos_summary(
    rec: ChaosRecord,
    summary: dict[str, Any],
    rows: list[dict[str, float]],
    *,
    poison_in_dlq: int,
    config: AppConfig,
    decline_share: float,
    async_invoke: bool,
    poison_spans: list[float] | None = None,
) -> dict[str, Any]:
    """What the faults did: kills, poison sent and where it ended, good orders stuck, time to recover.

    ``async_invoke``: the variant's events go through Lambda's async invoke; ``poison_spans`` are then each
    poison event's first attempt to its dead-lettering (``PoisonClock``)."""
    sent = sum(rec.poison_sent.values())
    # SQS moves a message to the DLQ at the receive after its maxReceiveCount-th visibility expiry; Lambda's
    # async invoke after its retries (~1 and ~2 minutes apart). Both scaled by the run's time scale.
    k = summary["time_scale"]
    landed = None
    if async_invoke:
        # Async invokes: from each poison event's first attempt (it may wait its turn in the async queue
        # behind the sale's orders, as on AWS) to its dead-lettering, after the retries' delays.
        bound = sum(60.0 * (n + 1) for n in range(config.sns_retry_attempts)) / k + 5.0
        if poison_spans:
            landed = max(poison_spans)
    else:
        bound = (config.max_receive_count + 1) * max(2.0, config.visibility_timeout_s / k)
    if not async_invoke and rec.poison_sent_at is not None:
        good_dead = summary["dead_lettered"]
        for r in rows:
            if r["t"] >= rec.poison_sent_at and r["dlq"] >= sent + good_dead:
                landed = r["t"] - rec.poison_sent_at
                break
    last_fault = rec.last_fault_at
    drained = summary["timeline"]["drained"]
    return {
        "kills": rec.killed,
        "kill_waves": [{"t": round(t, 2), "killed": n} for t, n in rec.kills],
        "poison_sent": sent,
        "poison_sent_to": rec.poison_sent,
        "poison_dead_lettered": poison_in_dlq,
        "poison_in_dlq_after_s": landed,
        "poison_bound_s": bound,
        "good_orders_stuck": summary["lost"],
        "processor_outage_s": [round(t, 2) for t in rec.outage] if rec.outage else None,
        "healthy_orders_dead_lettered": summary["dead_lettered"],
        "recovery_seconds": drained - last_fault if last_fault is not None else None,
        "payment_failure_rate": config.payment_failure_rate,
        "decline_share": decline_share,
        "errors": rec.errors,
    }
