"""One sandbox run: emulator -> cdk deploy -> control plane -> flash sale -> drain -> report."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orders.adapters.catalog import stock_levels
from planner.config import resolve
from sandbox.emulator import request_counts
from sandbox.emulator.event_sources import PollerGroup, stop_all
from sandbox.emulator.process import Scale
from sandbox.emulator.queues import Depth, queue_depth
from sandbox.emulator.schedules import Scheduler, schedule_runs
from sandbox.errors import SandboxError
from sandbox.results import metrics, report
from sandbox.results.emulator import emulator_cost, merge
from sandbox.results.money import money, read_checkouts, sold_out_answers
from sandbox.results.report import report_dir
from sandbox.results.stock import stock
from sandbox.results.summary import Observed, RunSetup, Timeline, chaos_summary, classify_dlq, summarize
from sandbox.runs import cpu
from sandbox.runs.chaos import ChaosMonkey, ChaosPlan, PoisonClock, is_poison
from sandbox.runs.load import TRACKER_SHARE, finish_trackers, kill, run_locust, start_trackers
from sandbox.stack import latency, sizing
from sandbox.stack.probes import charged_order_ids, dlq_bodies, read_ledger, read_orders, wait_drained
from sandbox.stack.topology import DEFAULT_CATALOG, Pipeline, outage_file, run_context, start_pipeline
from sandbox.stack.workers import Workers, start_consumers, start_ecs, start_lambda, start_schedules

log = logging.getLogger("sandbox")
ROOT = Path(__file__).resolve().parents[2]

# users, seconds (real time), per checkout path. `flash` is sized for two cores: the API environments, Locust
# and the emulator share them with the workers, and a sale that leaves the workers short of CPU measures the
# machine, not the workers the model describes (the efficiency bar says which). `source` is the seed's sale.
SCENARIOS = {"normal": (5, 30.0), "flash": (10, 20.0), "source": (20, 60.0)}


@dataclass
class Options:
    compute: str = "lambda"
    scenario: str = "flash"
    time_scale: float = 1.0
    users: int | None = None
    duration_s: float | None = None
    drain_timeout_s: float = 300.0
    port: int = 0
    context: dict[str, str] | None = None
    reports: Path = ROOT / "reports"
    label: str = ""  # appended to the report folder's name (e.g. "-sns")
    chaos: ChaosPlan | None = None  # the flash sale under faults (`make chaos`)
    catalog: Path = DEFAULT_CATALOG  # the sale's products and stock, loaded before the load
    size: bool = False  # size the sale to this machine (sandbox/stack/sizing.py): `make sandbox` does
    sized: sizing.Sizing | None = None  # a sale sized beforehand (`make compare`: one sale for every variant)


class Sampler:
    """Samples queue depth, workers and accepted orders twice a second for the report."""

    def __init__(self, probe: Any, t0: float) -> None:
        self.probe = probe
        self.rows: list[dict[str, float]] = []
        self.stop = threading.Event()
        self.t0 = t0
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)

    def _loop(self) -> None:
        while not self.stop.wait(0.5):
            try:
                self.rows.append({"t": time.monotonic() - self.t0, **self.probe()})
            except Exception:
                log.exception("sample failed")

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=5)


def run(opts: Options, progress: Any = print) -> dict[str, Any]:
    """Deploy, start the variant's workers, the sync then the async checkout, drain, summarize, report."""
    if shutil.which("node") is None or shutil.which("npx") is None:
        raise SandboxError("node/npx not found: install Node.js 20+ (the CDK CLI runs on it)")
    workdir = report_dir(opts.reports, f"{opts.compute}{opts.label}")
    k = Scale(opts.time_scale)
    users, real_seconds = SCENARIOS[opts.scenario]
    users = opts.users or users
    sized = opts.sized or (_sizing(opts, users, progress) if opts.size else None)
    with ExitStack() as stack:
        sale = _start_sale(opts, workdir, stack, progress, k, users, sized)
        if opts.size or opts.users is None:  # a sale the next one may be sized from: measure the idle sandbox
            sale.idle_cores = _idle_cores(sale)
        sale.phase_s = k.seconds(opts.duration_s or real_seconds, 1.0)
        sync_stats = _sync_checkout(sale)
        async_stats, monkey, trackers = _async_checkout(sale)
        drained = _drain(sale, opts.drain_timeout_s)
        sessions = finish_trackers(trackers, workdir / "logs") if trackers is not None else None
        # Counted once every shopper has stopped: a tracking shopper's checkout may still be answered after
        # the sale's own users stopped, and its order is one of the sale's.
        accepted = sale.p.front.accepted - sale.accepted_before
        summary = _summary(sale, sync_stats, async_stats, accepted, drained)
        _add_tracking(summary, sessions, sale.orders)
        if monkey is not None:
            _add_chaos(summary, sale, monkey)
        report.write(workdir, summary, sale.sampler.rows)
        if not opts.chaos and sale.idle_cores is not None:  # what an order cost here: the next sale is sized from it
            sizing.record(summary, workdir, _state_dir())
        return {"summary": summary, "dir": workdir}


IDLE_SAMPLE_S = 2.0


def _idle_cores(sale: Sale) -> float | None:
    """What the deployed sandbox burns with nothing to do (pollers, consumers, probes), before the load."""
    start = cpu.snapshot(_port(sale.p.data_endpoint))
    time.sleep(IDLE_SAMPLE_S)
    use = cpu.cpu_use(start, cpu.snapshot(_port(sale.p.data_endpoint)))
    if use is None:
        return None
    roles: dict[str, float] = use["by_role_cores"]  # type: ignore[assignment]
    return round(sum(roles.values()), 3)


def _state_dir() -> Path:
    from sandbox.runs.live import state_dir

    return state_dir()


def _sizing(opts: Options, users: int, progress: Any) -> sizing.Sizing:
    """The sale for the cores free now, from what an order of this variant last cost here."""
    config = resolve(run_context(opts.compute, opts.context))
    variant = config.variant
    # No tracking shoppers beside the fault harness: a chaos sale's own users place every order.
    calibration = sizing.load(variant, _state_dir())
    sized = sizing.size(variant, calibration, config, users=users, cores=cpu.free_cores(), tracking=not opts.chaos)
    caps = ", ".join(f"{k}={v}" for k, v in sized.context.items())
    progress(
        f"sized to this machine: {sized.free_cores:.1f} free cores x {sizing.SHARE:.0%} / "
        f"{sized.calibration.cpu_s_per_order * 1000:.0f} ms CPU per order = {sized.arrival_per_s:.1f} orders/s; "
        f"workers {caps} ({sized.worker_capacity_per_s:.1f} paid/s); from {sized.calibration.basis}"
    )
    return sized


@dataclass
class Sale:
    """One run's moving parts between the deploy and the report; ``marks`` are seconds after ``t0``."""

    opts: Options
    p: Pipeline
    workers: Workers
    sampler: Sampler
    stack: ExitStack
    workdir: Path
    progress: Any
    k: Scale
    users: int
    t0: float
    t0_wall: float
    poison_clock: PoisonClock | None
    phase_s: float = 0.0
    marks: dict[str, float] = field(default_factory=dict)
    async_start_wall: str = ""
    end_backlog: int = 0
    orders: list[dict[str, Any]] = field(default_factory=list)
    dlq_by_reason: dict[str, int] = field(default_factory=dict)
    poison_in_dlq: int = 0
    scheduler: Scheduler | None = None  # the stack's EventBridge schedules (the reconciler), fired here
    cpu_start: cpu.Snapshot | None = None  # the machine's CPU at the async sale's start, and after the drain
    cpu_end: cpu.Snapshot | None = None
    accepted_before: int = 0  # the front's accepted count when the async sale started
    sized: sizing.Sizing | None = None  # the sale sized to this machine, or None (the user's or the scenario's)
    idle_cores: float | None = None  # the sandbox's own CPU before the load

    def mark(self, name: str) -> None:
        self.marks[name] = time.monotonic() - self.t0

    def backlog(self, *, fresh: bool = False) -> Depth:
        return self.workers.backlog(self.p.client("sqs"), fresh=fresh)

    def drain_reading(self) -> Depth:
        """The shared reading while it shows work left; an empty one is confirmed by reading again now."""
        depth = self.backlog()
        return depth if depth.total else self.backlog(fresh=True)

    def sample(self) -> dict[str, float]:
        backlog = self.backlog()
        return {
            "visible": backlog.visible,
            "inflight": backlog.in_flight,
            "dlq": queue_depth(self.p.client("sqs"), self.p.dlq_url).visible,
            "workers": float(self.workers.busy()),
            "accepted": float(self.p.front.accepted),
        }


def _start_sale(
    opts: Options, workdir: Path, stack: ExitStack, progress: Any, k: Scale, users: int, sized: sizing.Sizing | None
) -> Sale:
    caps = sized.context if sized else None
    context = run_context(opts.compute, opts.chaos.context() if opts.chaos else None, caps, opts.context)
    p = start_pipeline(
        context=context,
        workdir=workdir,
        stack=stack,
        progress=progress,
        k=k,
        api_envs=users,
        port=opts.port,
        catalog=opts.catalog,
    )
    over = request_overheads(p, progress)
    before = set(PollerGroup.live)
    t0, t0_wall = time.monotonic(), time.time()
    poison_clock = PoisonClock() if opts.chaos else None
    if p.deployment.compute.startswith("lambda"):
        workers = start_lambda(p, workdir, stack, k, progress, observer=poison_clock, overheads=over)
    else:
        workers = start_ecs(p, workdir, stack, k, progress, t0, overheads=over)
    start_consumers(p, workdir, stack, k, progress)
    # Closed last to first, each waiting out its pollers' long polls: stop them all first, so they wait at once.
    stack.callback(stop_all, [g for g in PollerGroup.live if g not in before])
    scheduler = start_schedules(p, workdir, stack, k, progress)
    sampler = Sampler(lambda: sale.sample(), t0)  # started once the sale it samples exists
    sale: Sale = Sale(opts, p, workers, sampler, stack, workdir, progress, k, users, t0, t0_wall, poison_clock)
    sale.scheduler = scheduler
    sale.sized = sized
    sampler.start()
    stack.callback(sampler.close)
    return sale


def request_overheads(p: Pipeline, progress: Any) -> latency.Overheads:
    """The emulator's latency for a worker's requests, timed on the idle pipeline: the model's overheads."""
    over = latency.measure(
        p.client("dynamodb"), p.client("sqs"), p.client("sns"), ledger_dir=p.ledger_path.parent, topic_arn=p.topic_arn
    )
    progress(
        f"emulator requests: {over.record_s * 1000:.0f} ms per record paid, {over.invocation_s * 1000:.0f} ms "
        "per invocation (the model adds them)"
    )
    return over


def _with_idle(use: dict[str, Any] | None, idle: float | None) -> dict[str, Any] | None:
    return {**use, "idle_cores": idle} if use is not None else None


def _port(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[-1]


def _sync_checkout(sale: Sale) -> dict[str, Any]:
    sale.progress(f"sync checkout: {sale.users} users for {sale.phase_s:.0f} s (time scale {sale.k.k:g}) ...")
    sale.mark("sync_start")
    stats = run_locust("SyncBuyer", sale.users, sale.phase_s, sale.p.front.base, sale.workdir / "logs")
    sale.mark("sync_end")
    return stats


def _async_checkout(sale: Sale) -> tuple[dict[str, Any], ChaosMonkey | None, Any]:
    """The async load, with the fault harness or the trackers beside it: (stats, monkey, trackers)."""
    opts, p, host = sale.opts, sale.p, sale.p.front.base
    sale.progress(f"async checkout: {sale.users} users for {sale.phase_s:.0f} s ...")
    sale.async_start_wall = datetime.now(UTC).isoformat(timespec="milliseconds")
    sale.mark("async_start")
    sale.accepted_before = p.front.accepted
    for endpoint in (p.endpoint, p.data_endpoint):
        request_counts.read(endpoint, reset=True)  # count what the async sale asks, from here to drained
    sale.cpu_start = cpu.snapshot(_port(p.data_endpoint))
    monkey = _start_monkey(sale) if opts.chaos else None
    trackers = None
    if p.ws_url and not opts.chaos:
        tracking_users = max(1, sale.users // TRACKER_SHARE)
        # A sized sale paces its trackers; a sale of the user's own size (tests) tracks a checkout every 2 s.
        every = tracking_users / sale.sized.tracked_per_s if sale.sized else (2.0 if opts.users else None)
        trackers = start_trackers(tracking_users, sale.phase_s, host, p.ws_url, sale.workdir / "logs", every_s=every)
        sale.stack.callback(kill, trackers)
    decline = str(opts.chaos.decline_share) if opts.chaos else "0"
    rate = sale.sized.per_user_rate if sale.sized else None
    stats = run_locust(
        "AsyncBuyer", sale.users, sale.phase_s, host, sale.workdir / "logs", decline_share=decline, user_rate=rate
    )
    sale.mark("load_end")
    return stats, monkey, trackers


def _start_monkey(sale: Sale) -> ChaosMonkey:
    assert sale.opts.chaos is not None
    p, workers = sale.p, sale.workers
    monkey = ChaosMonkey(
        sale.opts.chaos,
        sqs=p.client("sqs"),
        sns=p.client("sns"),
        queue_url=p.queue_url if workers.backlog_queue == p.queue_url else None,
        topic_arn=p.topic_arn,
        api_base=p.front.base,
        busy=workers.busy,
        kill=workers.kill,
        t0=sale.t0,
        outage_file=outage_file(p.ledger_path),
        time_scale=sale.k.k,
    )
    monkey.start()
    sale.stack.callback(monkey.close)
    return monkey


def _drain(sale: Sale, timeout_s: float) -> bool:
    sale.end_backlog = sale.backlog(fresh=True).total
    sale.progress(f"backlog {sale.end_backlog} at the end of the load; draining ...")
    drained = wait_drained(sale.drain_reading, timeout_s, sale.progress)
    sale.mark("drained")
    sale.cpu_end = cpu.snapshot(_port(sale.p.data_endpoint))
    time.sleep(0.5)
    sale.sampler.close()
    return drained


def _summary(
    sale: Sale, sync_stats: dict[str, Any], async_stats: dict[str, Any], accepted: int, drained: bool
) -> dict[str, Any]:
    p, workers, k = sale.p, sale.workers, sale.k
    sale.orders = read_orders(p.client("dynamodb"), p.orders_table)
    # The runbook's first look at the DLQ comes before the accounting reads it (and hides it for a while).
    sale.dlq_by_reason = redrive_show(p) if sale.opts.chaos else {}
    dead, sale.poison_in_dlq, unnamed = classify_dlq(dlq_bodies(p.client("sqs"), p.dlq_url), is_poison)
    rows = sale.sampler.rows
    setup = RunSetup(
        compute=workers.compute,
        scenario=sale.opts.scenario,
        time_scale=k.k,
        users=sale.users,
        phase_s=sale.phase_s,
        config=p.config,
        workload=workers.workload,
        timing=workers.timing,
        slots=int(p.api_env.get("PAYMENT_SLOTS", "5")),
        sync_latency_s=int(p.api_env.get("PAYMENT_LATENCY_MS", "3000")) / 1000 / k.k,
    )
    timeline = Timeline(t0_wall=sale.t0_wall, async_start_wall=sale.async_start_wall, **sale.marks)
    checkouts = sale.workdir / "logs" / "checkouts.jsonl"
    told = read_checkouts(checkouts.read_text().splitlines() if checkouts.exists() else [])
    seen = Observed(
        orders=sale.orders,
        rows=rows,
        accepted=accepted,
        rejected=async_stats["failures"],
        async_stats=async_stats,
        sync_stats=sync_stats,
        dead=dead,
        unnamed_in_dlq=unnamed,
        end_backlog=sale.end_backlog,
        drained=drained,
        peak_workers=int(max([r["workers"] for r in rows] + [workers.pool.peak if workers.pool else 0])),
        ledger=read_ledger(p.ledger_path),
        sold_out_at=sold_out_answers(told, "/orders"),
    )
    counted = money(sale.orders, charged_order_ids(p.ledger_path), told)
    levels = stock_levels(p.client("dynamodb"), p.catalog_table)
    return {
        **summarize(setup, timeline, seen),
        "money": counted,
        "stock": stock(levels, sale.orders, told),
        "schedules": schedule_runs(sale.scheduler),
        "emulator": emulator_cost(
            merge(*(request_counts.read(e) for e in (p.endpoint, p.data_endpoint))),
            orders=accepted,
            seconds=sale.marks["drained"] - sale.marks["async_start"],
        ),
        "cpu": _with_idle(cpu.cpu_use(sale.cpu_start, sale.cpu_end), sale.idle_cores),
        "sizing": sale.sized.describe() if sale.sized else None,
        **workers.details(),
    }


def _add_tracking(summary: dict[str, Any], sessions: list[dict[str, Any]] | None, orders: list[dict[str, Any]]) -> None:
    if sessions is not None:
        final_seq = {str(o["order_id"]): len(o.get("log") or []) for o in orders}
        summary["tracking"] = metrics.tracking_summary(sessions, final_seq)


def _add_chaos(summary: dict[str, Any], sale: Sale, monkey: ChaosMonkey) -> None:
    monkey.close()
    summary["chaos"] = chaos_summary(
        monkey.record,
        summary,
        sale.sampler.rows,
        poison_in_dlq=sale.poison_in_dlq,
        config=sale.p.config,
        decline_share=monkey.plan.decline_share,
        async_invoke=sale.workers.invoker is not None,
        poison_spans=sale.poison_clock.spans() if sale.poison_clock else None,
    )
    summary["chaos"]["redrive_show"] = sale.dlq_by_reason


def redrive_show(p: Pipeline) -> dict[str, int]:
    """What the runbook's first step (``python -m orders.redrive show``) says of this run's DLQ."""
    from orders.redrive import Redrive

    tool = Redrive(
        sqs=p.client("sqs"),
        ddb=p.client("dynamodb"),
        sns=p.client("sns"),
        dlq_url=p.dlq_url,
        queue_url=p.queue_url,
        table=p.orders_table,
        topic_arn=p.topic_arn,
    )
    return dict(tool.show())
