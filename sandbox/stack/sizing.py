"""A sale sized to the machine: an arrival rate this machine can serve end to end, and workers slower than it.

Every service, function environment and task of the sandbox is a local process, so a sale that asks for
more CPU than the machine has measures the machine, not the pipeline: workers wait for a core, the drain
runs long against the model and the bars say nothing about the design. Sizing keeps the sale's demand at
``SHARE`` of the cores free at the start, from the CPU one order costs here end to end (every process the
sandbox starts, from the async sale's start to the drain: a run's ``cpu`` block). It then caps the workers
at ``BACKLOG`` of that arrival rate, so a backlog still builds during the load and drains after it: a
flash sale in small.

The cost of an order comes from the last run of the variant on this machine (``.sandbox/calibration.json``,
written after every sale), or before the first, from the reference figures measured on the project's
2-core machine (``REFERENCE``). The report states which, and the sizes chosen.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from planner import aws

SHARE = 0.6  # of the free cores the sale's demand may take: the rest absorbs bursts, cold starts, the sampler
BACKLOG = 0.5  # worker capacity as a share of the arrival rate: the other half builds the backlog
# Of the arrivals, what the tracking shoppers place (at most 70%): enough tracked orders to measure in a
# 20 s sale (the report's bar wants 20), the rest from the sale's own users.
TRACKED_PER_S = 1.5
# CPU seconds one order costs end to end on top of the idle sandbox, measured by `make sandbox` on the
# project's 2-core machine (Dec 2026, default sale with tracking): used until this machine has measured its own.
REFERENCE = {"lambda-sqs": 0.40, "lambda-sqs-provisioned": 0.40, "lambda-sns": 0.40, "lambda-mi": 0.40, "ecs": 0.35}
REFERENCE_IDLE_CORES = 0.25  # the idle sandbox there (event source pollers, consumers, the sampler)
# Context keys that fix the workers or the load: a user who sets one sizes the sale themselves.
FIXED_BY_USER = (
    "reservedConcurrency",
    "maxConcurrency",
    "maxTasks",
    "batchSize",
    "workerConcurrency",
    "lambdaMinPollers",
    "lambdaMaxPollers",
)


def fixes_the_sale(context: dict[str, str]) -> bool:
    """Whether the user's context caps the workers (maxConcurrency=0 caps nothing: provisioned pollers need it)."""
    return any(k in FIXED_BY_USER and not (k == "maxConcurrency" and v == "0") for k, v in context.items())


@dataclass(frozen=True)
class Calibration:
    variant: str
    cpu_s_per_order: float  # on top of the sandbox's idle load
    basis: str  # where the figure comes from
    idle_cores: float = 0.0  # what the deployed sandbox uses with nothing to do (pollers, probes)


@dataclass(frozen=True)
class Sizing:
    calibration: Calibration
    free_cores: float
    capacity_per_s: float  # orders/s the free cores serve at SHARE
    arrival_per_s: float
    users: int
    per_user_rate: float  # checkouts per second per Locust user (constant_throughput)
    tracked_per_s: float  # of the arrivals, the tracking shoppers' checkouts
    worker_capacity_per_s: float
    context: dict[str, str]  # the worker caps deployed

    def describe(self) -> dict[str, Any]:
        return {
            "basis": self.calibration.basis,
            "cpu_ms_per_order": round(self.calibration.cpu_s_per_order * 1000, 1),
            "free_cores": round(self.free_cores, 2),
            "share": SHARE,
            "capacity_per_s": round(self.capacity_per_s, 2),
            "arrival_per_s": round(self.arrival_per_s, 2),
            "users": self.users,
            "per_user_rate": round(self.per_user_rate, 3),
            "tracked_per_s": round(self.tracked_per_s, 2),
            "worker_capacity_per_s": round(self.worker_capacity_per_s, 2),
            "context": self.context,
        }


def calibration_file(state_dir: Path) -> Path:
    return state_dir / "calibration.json"


def load(variant: str, state_dir: Path) -> Calibration:
    """This machine's last measurement of the variant, else the reference figure."""
    path = calibration_file(state_dir)
    try:
        entry = json.loads(path.read_text())[variant]
        basis = f"this machine, {entry['at']} ({entry['report']})"
        return Calibration(variant, float(entry["cpu_s_per_order"]), basis, float(entry.get("idle_cores", 0.0)))
    except (OSError, ValueError, KeyError, TypeError):
        return Calibration(
            variant, REFERENCE[variant], "the reference 2-core machine (no run of this variant here yet)"
        )


def record(summary: dict[str, Any], workdir: Path, state_dir: Path) -> float | None:
    """Keep what one order cost this run (all the sandbox's cores over the window, per accepted order)."""
    cpu, emulator, accepted = summary.get("cpu"), summary.get("emulator"), int(summary.get("accepted") or 0)
    if not cpu or not emulator or accepted < 10:
        return None
    idle = float(cpu.get("idle_cores") or 0.0)  # pollers and probes: paid per second, not per order
    cost = max(0.01, sum(cpu["by_role_cores"].values()) - idle) * float(emulator["seconds"]) / accepted
    path = calibration_file(state_dir)
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    known[summary["compute"]] = {
        "cpu_s_per_order": round(cost, 4),
        "idle_cores": round(idle, 3),
        "at": at,
        "report": workdir.name,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known, indent=2) + "\n")
    return cost


def worker_caps(variant: str, target_per_s: float, cfg: Any) -> tuple[dict[str, str], float]:
    """The fewest workers whose capacity is about ``target_per_s`` (and what they pay per second)."""
    slots, latency = cfg.payment_slots, cfg.payment_latency_ms / 1000
    if variant == "ecs":
        task = aws.ecs_task_capacity_per_s(
            worker_concurrency=cfg.worker_concurrency, payment_slots=slots, payment_latency_s=latency
        )
        tasks = max(1, math.floor(target_per_s / task))
        if tasks > 1:
            return {"maxTasks": str(tasks)}, tasks * task
        consumers = max(1, min(cfg.worker_concurrency, round(target_per_s * latency)))
        return {"maxTasks": "1", "workerConcurrency": str(consumers)}, min(consumers, slots) / latency
    if variant == "lambda-sns":  # one event per invoke
        envs = max(1, round(target_per_s * latency))
        return {"reservedConcurrency": str(envs)}, envs / latency
    if variant == "lambda-sqs-provisioned":
        # At least 2 pollers of 10 invokes each, all reserved (the config's rule): 20 environments or more.
        least = 2 * aws.LAMBDA_SQS_INVOKES_PER_POLLER
        for batch in range(cfg.batch_size, 0, -1):
            env = aws.lambda_env_capacity_per_s(batch_size=batch, payment_slots=slots, payment_latency_s=latency)
            envs = round(target_per_s / env)
            if envs >= least or batch == 1:
                pollers = max(2, math.ceil(envs / aws.LAMBDA_SQS_INVOKES_PER_POLLER))
                caps = {
                    "reservedConcurrency": str(pollers * aws.LAMBDA_SQS_INVOKES_PER_POLLER),
                    "lambdaMinPollers": "2",
                    "lambdaMaxPollers": str(pollers),
                    "batchSize": str(batch),
                }
                return caps, pollers * aws.LAMBDA_SQS_INVOKES_PER_POLLER * env
    if variant == "lambda-mi":
        # Environments of lmiPerEnvironmentConcurrency requests, at least Lambda's 3; the mapping's
        # maxConcurrency (2 or more) caps the requests below what they could run, smaller batches slow each.
        per = cfg.mi_concurrency
        for batch in range(cfg.batch_size, 0, -1):
            env = aws.lambda_env_capacity_per_s(batch_size=batch, payment_slots=slots, payment_latency_s=latency)
            requests = round(target_per_s / env)
            if requests >= 2 or batch == 1:
                requests = max(2, requests)
                envs = max(cfg.mi_min_envs, math.ceil(requests / per))
                caps = {"lmiMaxEnvironments": str(envs), "maxConcurrency": str(requests), "batchSize": str(batch)}
                return caps, requests * env
    # lambda-sqs: the event source mapping runs at least 2 environments; smaller batches make them slower
    for batch in range(cfg.batch_size, 0, -1):
        env = aws.lambda_env_capacity_per_s(batch_size=batch, payment_slots=slots, payment_latency_s=latency)
        envs = round(target_per_s / env)
        if envs >= 2 or batch == 1:
            envs = max(2, envs)
            caps = {"reservedConcurrency": str(envs), "maxConcurrency": str(envs), "batchSize": str(batch)}
            return caps, envs * env
    raise AssertionError("unreachable")


def size_together(
    configs: dict[str, Any],
    calibrations: dict[str, Calibration],
    *,
    users: int,
    cores: float,
    with_latency: Any,
) -> dict[str, Sizing]:
    """One sale for every variant (`make compare`): the arrival rate the costliest of them can take here, and
    each variant's workers at ``BACKLOG`` of it.

    Some variants cannot be made that small: provisioned pollers run 20 environments at least (2 pollers of
    10 invokes), Managed Instances 3 environments. Then the payment processor is made slower for every
    variant alike (``paymentLatencyMs``, from ``with_latency(variant, ms)``, a config), until the smallest
    deployment of each pays at most ``BACKLOG`` x 1.25 of the arrival rate: a backlog builds for all of them.
    """
    capacity = {v: _capacity(calibrations[v], cores) for v in configs}
    arrival = min(capacity.values())
    target = arrival * BACKLOG
    latency_ms = max(c.payment_latency_ms for c in configs.values())
    for variant, c in configs.items():
        _, least = worker_caps(variant, target, c)
        latency_ms = max(latency_ms, math.ceil(c.payment_latency_ms * least / (target * 1.25) / 100) * 100)
    out = {}
    for variant, c in configs.items():
        slower = c if latency_ms == c.payment_latency_ms else with_latency(variant, latency_ms)
        caps, workers = worker_caps(variant, target, slower)
        if latency_ms != c.payment_latency_ms:
            caps = {**caps, "paymentLatencyMs": str(latency_ms)}
        out[variant] = _sale(calibrations[variant], cores, capacity[variant], arrival, users, workers, caps)
    return out


def _capacity(calibration: Calibration, cores: float) -> float:
    """Orders/s at SHARE of ``cores``, the sandbox's own idle load taken off first."""
    return max(0.1, cores * SHARE - calibration.idle_cores) / calibration.cpu_s_per_order


def _sale(
    calibration: Calibration,
    cores: float,
    capacity: float,
    arrival: float,
    users: int,
    workers: float,
    context: dict[str, str],
    tracking: bool = True,
) -> Sizing:
    """A sale of ``arrival`` orders/s: the tracking shoppers' share (at most 70%; none without them), the
    users the rest."""
    tracked = min(TRACKED_PER_S, 0.7 * arrival) if tracking else 0.0
    return Sizing(
        calibration=calibration,
        free_cores=cores,
        capacity_per_s=capacity,
        arrival_per_s=arrival,
        users=users,
        per_user_rate=(arrival - tracked) / users,
        tracked_per_s=tracked,
        worker_capacity_per_s=workers,
        context=context,
    )


def size(
    variant: str, calibration: Calibration, cfg: Any, *, users: int, cores: float, tracking: bool = True
) -> Sizing:
    """The sale for ``cores`` free cores: arrivals at SHARE of them (the sandbox's own idle load taken off
    first), workers at BACKLOG of the arrivals; ``tracking``: tracking shoppers place part of them."""
    capacity = _capacity(calibration, cores)
    context, workers = worker_caps(variant, capacity * BACKLOG, cfg)
    return _sale(calibration, cores, capacity, capacity, users, workers, context, tracking)
