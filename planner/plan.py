"""The smallest deployment of each variant that meets a flash-sale target, and the limits the target runs into."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from planner import aws
from planner.model import ACCOUNT_CONCURRENCY, VARIANTS, Result, Timing, Workload, arrivals_from_profile, simulate

RESERVED_MAX = 1000  # the most reservedConcurrency the config takes (and Lambda's default account quota)
ECS_TASKS_PER_SERVICE = 5000


@dataclass(frozen=True)
class Target:
    rate_per_s: float
    duration_s: float
    drain_slo_s: float

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0 or self.duration_s <= 0 or self.drain_slo_s < 0:
            raise ValueError("rate and duration must be > 0 and the drain SLO >= 0")

    @property
    def arrivals(self) -> list[float]:
        return arrivals_from_profile([(self.rate_per_s, self.duration_s)])


@dataclass(frozen=True)
class Sizing:
    variant: str
    workload: Workload | None  # None: no size within the variant's ceiling meets the target
    result: Result | None
    knob: str
    ceiling: int
    note: str = ""


def setting(workload: Workload) -> str:
    """The context keys that deploy a variant's workers as sized (all of them: a provisioned mapping's
    pollers need their invokes reserved)."""
    if workload.variant == "ecs":
        return f"maxTasks={workload.max_tasks}, workerConcurrency={workload.worker_concurrency}"
    if workload.variant == "lambda-mi":
        return (
            f"lmiMaxEnvironments={workload.mi_max_envs}, lmiPerEnvironmentConcurrency={workload.mi_concurrency}, "
            f"maxConcurrency={workload.max_concurrency}, batchSize={workload.batch_size}"
        )
    out = f"reservedConcurrency={workload.reserved_concurrency}"
    if workload.variant == "lambda-sqs":
        out += f", maxConcurrency={workload.max_concurrency}"
    if workload.variant == "lambda-sqs-provisioned":
        out += f", maxConcurrency=0, lambdaMinPollers={workload.min_pollers}, lambdaMaxPollers={workload.max_pollers}"
    return out + (f", batchSize={workload.batch_size}" if workload.variant != "lambda-sns" else "")


def _search(lo: int, hi: int, meets: Callable[[int], bool]) -> int | None:
    """The smallest n in [lo, hi] for which ``meets`` holds (monotone), or None: doubling, then bisection."""
    probe = lo
    while not meets(probe):
        if probe >= hi:
            return None
        lo, probe = probe + 1, min(hi, probe * 2)
    hi = probe
    while lo < hi:
        mid = (lo + hi) // 2
        if meets(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def size(variant: str, base: Workload, target: Target, timing: Timing | None = None) -> Sizing:
    """Grow the variant's worker ceiling until the simulated drain meets the SLO."""
    timing = timing or Timing.aws()
    arrivals = target.arrivals
    results: dict[int, Result] = {}

    def build(n: int) -> Workload:
        if variant == "ecs":
            return replace(
                base,
                variant=variant,
                max_tasks=n,
                min_tasks=min(base.min_tasks, n),
                worker_concurrency=max(base.worker_concurrency, base.payment_slots),
            )
        if variant == "lambda-sqs":
            return replace(base, variant=variant, max_concurrency=n, reserved_concurrency=max(n, 2))
        if variant == "lambda-sqs-provisioned":  # the pollers' invokes reserved, as the config requires
            per_poller = aws.LAMBDA_SQS_INVOKES_PER_POLLER
            return replace(
                base,
                variant=variant,
                max_pollers=n,
                min_pollers=min(base.min_pollers, n),
                max_concurrency=0,
                reserved_concurrency=n * per_poller,
            )
        if variant == "lambda-mi":  # environments; the mapping's maximum admits all their requests
            conc = base.mi_concurrency
            return replace(
                base,
                variant=variant,
                mi_max_envs=n,
                mi_min_envs=min(base.mi_min_envs, n),
                max_concurrency=min(aws.LAMBDA_SQS_MAX_CONCURRENCY, max(2, n * conc)),
            )
        return replace(base, variant=variant, reserved_concurrency=n)

    def meets(n: int) -> bool:
        r = results.get(n) or simulate(build(n), arrivals, timing, horizon_s=target.duration_s + 4 * 3600)
        results[n] = r
        return r.drain_seconds is not None and r.drain_seconds <= target.drain_slo_s

    knob, lo, ceiling = {
        "ecs": ("maxTasks", 1, ECS_TASKS_PER_SERVICE),
        "lambda-sqs": ("maxConcurrency", 2, aws.LAMBDA_SQS_MAX_CONCURRENCY),
        # Their invokes reserved, as the config requires: reservedConcurrency is at most 1,000 (100 pollers).
        "lambda-sqs-provisioned": ("lambdaMaxPollers", 2, RESERVED_MAX // aws.LAMBDA_SQS_INVOKES_PER_POLLER),
        "lambda-sns": ("reservedConcurrency", 1, ACCOUNT_CONCURRENCY * 10),
        # at least the 3 environments Lambda starts across AZs
        "lambda-mi": (
            "execution environments",
            aws.LAMBDA_MI_MIN_ENVIRONMENTS,
            aws.LAMBDA_SQS_MAX_CONCURRENCY // base.mi_concurrency,
        ),
    }[variant]
    # No size can pay the sale's orders faster than its slots allow: start the search there.
    per_worker = build(lo).worker_capacity_per_s
    floor = math.ceil(target.rate_per_s * target.duration_s / ((target.duration_s + target.drain_slo_s) * per_worker))
    if variant == "lambda-sqs-provisioned":  # the knob counts pollers, each of 10 workers
        floor = math.ceil(floor / aws.LAMBDA_SQS_INVOKES_PER_POLLER)
    if variant == "lambda-mi":  # the knob counts environments, each of mi_concurrency workers
        floor = math.ceil(floor / base.mi_concurrency)
    n = _search(min(max(lo, floor), ceiling), ceiling, meets)
    if n is None:
        return Sizing(variant, None, None, knob, ceiling, f"no {knob} up to {ceiling} meets the drain SLO")
    return Sizing(variant, build(n), results[n], knob, n)


@dataclass(frozen=True)
class Limit:
    name: str
    limit: float
    unit: str
    demand: float  # at the target
    adjustable: str
    source: str

    @property
    def headroom(self) -> float:
        """How many times the target's rate this limit allows (< 1: the target is over it)."""
        return self.limit / self.demand if self.demand else float("inf")


def _in_flight(held: float) -> Limit:
    return Limit(
        "SQS in-flight messages per standard queue",
        120_000,
        "messages",
        held,
        "yes (AWS Support)",
        "Amazon SQS quotas: in-flight messages per standard queue (~120,000)",
    )


# One DynamoDB partition serves up to 1,000 write units a second, and one item lives in one partition;
# a transactional write costs two write units per item up to 1 KB (DynamoDB Developer Guide: "Partitions
# and data distribution", "Read/write capacity mode: transactional read/write requests", read Dec 2026).
PARTITION_WRITE_UNITS = 1_000
TRANSACTION_WRITE_UNITS = 2
HOT_SKU_SHARE = 1.0  # a flash sale puts the crowd on one SKU: every order reserves it


def stock_writes_per_s(rate: float, hot_share: float = HOT_SKU_SHARE) -> float:
    """Write units a second the hottest SKU's stock takes: one transactional decrement per order for it."""
    return rate * hot_share * TRANSACTION_WRITE_UNITS


def shards_needed(rate: float, hot_share: float = HOT_SKU_SHARE) -> int:
    """The smallest ``stockShards`` whose items together take the hottest SKU's reservations."""
    return max(1, math.ceil(stock_writes_per_s(rate, hot_share) / PARTITION_WRITE_UNITS))


def hot_sku_limit(rate: float, stock_shards: int, hot_share: float = HOT_SKU_SHARE) -> Limit:
    return Limit(
        f"DynamoDB writes to one SKU's stock ({stock_shards} shard(s) x 1,000 write units/s)",
        stock_shards * PARTITION_WRITE_UNITS,
        "write units/s",
        stock_writes_per_s(rate, hot_share),
        f"yes: -c stockShards={shards_needed(rate, hot_share)} (the smallest for this rate), then make catalog",
        "DynamoDB Developer Guide: 1,000 write units/s per partition; a transactional write costs 2 per item",
    )


def limits(
    target: Target, sizing: Sizing, *, api_rate_limit: int, api_ms: float = 60.0, stock_shards: int = 1
) -> list[Limit]:
    """The AWS quotas and this deployment's own limits the target meets, tightest first (figures: Nov 2026)."""
    w = sizing.workload
    peak_workers = sizing.result.peak_workers if sizing.result else 0
    lambda_workers = peak_workers if w and w.variant != "ecs" else 0
    out = _shared_limits(target.rate_per_s, api_rate_limit, api_ms, lambda_workers)
    out.append(hot_sku_limit(target.rate_per_s, stock_shards))
    if w is not None:
        out += _worker_limits(w, peak_workers)
    return sorted(out, key=lambda lim: lim.headroom)


def _shared_limits(rate: float, api_rate_limit: int, api_ms: float, lambda_workers: int) -> list[Limit]:
    """What every variant's front door and data path meet at ``rate`` orders/s."""
    return [
        Limit(
            "HTTP API stage throttle (apiThrottleRateLimit)",
            api_rate_limit,
            "requests/s",
            rate,
            "yes: -c apiThrottleRateLimit=...",
            "this project's cdk.json; API Gateway answers 429 above it",
        ),
        Limit(
            "API Gateway account throttle",
            10_000,
            "requests/s",
            rate,
            "yes (Service Quotas)",
            "Amazon API Gateway quotas: throttle quota per account, per Region",
        ),
        Limit(
            "SNS publishes (us-east-1)",
            30_000,
            "messages/s",
            2 * rate,
            "yes (Service Quotas)",
            "Amazon SNS endpoints and quotas: Publish API, us-east-1",
        ),
        Limit(
            "DynamoDB on-demand table throughput",
            40_000,
            "write units/s",
            5 * rate,
            "yes (Service Quotas)",
            "Amazon DynamoDB quotas: per-table throughput for on-demand tables",
        ),
        Limit(
            "DynamoDB new on-demand table, instant capacity",
            4_000,
            "write units/s",
            5 * rate,
            "grows to 2x the previous peak within 30 min; pre-warm (warm throughput)",
            "Amazon DynamoDB Developer Guide: on-demand capacity mode, initial throughput",
        ),
        Limit(
            "Payment processor account rate (e.g. Stripe live mode)",
            100,
            "requests/s",
            rate,
            "ask the processor",
            "Stripe API docs: rate limits (100 read + 100 write operations/s in live mode)",
        ),
        Limit(
            "Lambda account concurrency (API + workers)",
            ACCOUNT_CONCURRENCY,
            "concurrent executions",
            rate * api_ms / 1000 + lambda_workers,
            "yes (Service Quotas)",
            "AWS Lambda quotas: concurrent executions",
        ),
    ]


def _worker_limits(w: Workload, peak_workers: int) -> list[Limit]:
    """What the variant's workers meet at their peak."""
    out: list[Limit] = []
    if w.variant == "lambda-sqs":
        held = peak_workers * w.batch_size
        out.append(
            Limit(
                "SQS event source mapping maximum concurrency",
                aws.LAMBDA_SQS_MAX_CONCURRENCY,
                "concurrent batches",
                peak_workers,
                "no: lambdaPollerMode=provisioned lifts it (pollers x 10, up to 20,000)",
                "AWS Lambda Developer Guide: maximum concurrency for SQS event sources (2-1000)",
            )
        )
        out.append(_in_flight(held))
    if w.variant == "lambda-sqs-provisioned":
        out.append(
            Limit(
                "SQS event source mapping, provisioned mode: pollers x 10 invokes",
                aws.LAMBDA_SQS_PROVISIONED_MAX_CONCURRENCY,
                "concurrent batches",
                peak_workers,
                "no (2,000 pollers in CloudFormation)",
                "AWS Lambda Developer Guide: SQS provisioned mode (up to 20,000 concurrency)",
            )
        )
        out.append(_in_flight(peak_workers * w.batch_size))
    if w.variant == "ecs":
        held = peak_workers * (w.worker_concurrency + min(10, w.worker_concurrency))
        out += [
            Limit(
                "ECS tasks per service",
                ECS_TASKS_PER_SERVICE,
                "tasks",
                peak_workers,
                "no",
                "Amazon ECS service quotas: tasks per service",
            ),
            Limit(
                "Fargate vCPU (On-Demand or Spot resource count)",
                4_000,
                "vCPU",
                peak_workers * w.task_cpu / 1024,
                "yes (Service Quotas; the default is account-specific, often lower on new accounts)",
                "AWS Fargate service quotas: Fargate On-Demand / Spot vCPU resource count",
            ),
            _in_flight(held),
        ]
    if w.variant == "lambda-sns":
        out.append(
            Limit(
                "Lambda scaling rate per function",
                aws.LAMBDA_SCALE_PER_10S / 10,
                "new environments/s",
                peak_workers / 10,
                "no",
                "AWS Lambda Developer Guide: Lambda scaling behavior (1,000 per 10 s)",
            )
        )
    return out


def plan(
    base: Workload, target: Target, *, api_rate_limit: int, timing: Timing | None = None, stock_shards: int = 1
) -> dict[str, dict[str, Any]]:
    """Per variant: the smallest sizing that meets the target, its simulated figures and its limits."""
    out: dict[str, dict[str, Any]] = {}
    for variant in VARIANTS:
        sizing = size(variant, base, target, timing)
        out[variant] = {
            "sizing": sizing,
            "limits": limits(target, sizing, api_rate_limit=api_rate_limit, stock_shards=stock_shards),
        }
    return out
