"""What a month of orders costs on each variant, by service, from a dated price file.

Per-order work is counted from what the code does (requests, writes, payments
in flight); nothing is read off the source document's table. Every assumption
is a field of ``Assumptions`` with its default, and the report prints them.

Not counted: the consumers every variant deploys alike (order tracking and the notifications
example: their queues, functions, connections table and WebSocket API). They cost the same
whichever ``compute`` runs, so they move no break-even; the publishes they receive are counted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from planner import aws
from planner.model import SQS_MAPPED, Workload

PRICES = Path(__file__).with_name("prices.json")
MI_INTERFACE_ENDPOINTS = 2  # SNS and CloudWatch Logs: what the worker calls from the isolated subnets
MI_AZS = 2  # an environment-agnostic stack's VPC spans two AZs (aws-cdk-lib's Fn::GetAZs default)
HOURS_PER_MONTH = 730.0


@dataclass(frozen=True)
class Prices:
    values: dict[str, float]
    free: dict[str, float]
    read_on: str
    region: str
    sources: dict[str, str]

    @classmethod
    def load(cls, path: Path = PRICES) -> Prices:
        data = json.loads(path.read_text())
        values: dict[str, float] = {}
        sources: dict[str, str] = {}
        for key, entry in {**data["prices"], **data["free_tier"]}.items():
            raw = entry.get("usd", entry.get("value"))
            values[key] = float(raw)
            sources[key] = entry["source"]
        free = {k: float(v["value"]) for k, v in data["free_tier"].items()}
        return cls(values=values, free=free, read_on=data["read_on"], region=data["region"], sources=sources)

    def __getitem__(self, key: str) -> float:
        return self.values[key]


@dataclass(frozen=True)
class Assumptions:
    """The switches and per-order facts behind a monthly figure (defaults: what this project's code does)."""

    architecture: str = "arm"  # Lambda functions (x86 | arm); ECS tasks use `ecs_architecture`
    ecs_architecture: str = "x86"  # Spot is x86 only
    spot: bool = True  # fargateCapacity=spot (cdk.json default)
    free_tier: bool = True
    cold_start_share: float = 0.05  # invocations that start a new environment (billed INIT since Aug 2025)
    init_s: float = 0.5  # INIT duration of a worker environment
    flash_share: float = 0.5  # orders that arrive in sales (full batches); the rest arrive one at a time
    sales_per_month: int = 4  # flash sales, each ending in an ECS scale-in tail
    scale_in_tail_min: float = 20.0  # ECS: 15 low datapoints + the scale-in cooldown before tasks stop
    api_ms: float = 60.0  # API function duration per request
    api_memory_mb: int = 512
    invocation_overhead_ms: float = 20.0  # worker handler time outside the payment per invocation
    polls_per_order: float = 1.0  # GET /orders/{id} calls per order (customers checking status)
    log_bytes_per_invocation: float = 400.0  # Lambda START/END/REPORT and one EMF blob
    log_bytes_per_order_ecs: float = 250.0  # the ECS worker's EMF metrics per order
    alarms: int = 8
    custom_metrics: int = 8
    public_ipv4_per_task: bool = True  # tasks run in public subnets with a public IP (no NAT gateway)

    def __post_init__(self) -> None:
        if self.architecture not in ("x86", "arm") or self.ecs_architecture not in ("x86", "arm"):
            raise ValueError("architecture: expected x86 or arm")
        if self.spot and self.ecs_architecture != "x86":
            raise ValueError("Fargate Spot runs x86 tasks only: use ecs_architecture=x86 or spot=False")
        for name in ("cold_start_share", "flash_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: expected a share from 0 to 1")


# What one order costs in requests that do not depend on the variant (read from the runtime's code):
SNS_PUBLISHES_PER_ORDER = 3  # order_placed, payment_started, then payment_confirmed or payment_failed
WRU_PER_ORDER = 5  # orders: create, PAYING, terminal; idempotency: IN_PROGRESS, COMPLETED (items < 1 KB)
RRU_PER_ORDER = 1  # the worker's strongly consistent read of the order (payment attempts read it again)
ESM_IDLE_POLLERS = 5  # an SQS event source mapping long-polls with 5 connections while the queue is empty
LONG_POLL_S = 20


def _billable(amount: float, free: float, use_free: bool) -> float:
    return max(0.0, amount - free) if use_free else amount


def task_hour_price(workload: Workload, p: Prices, a: Assumptions) -> float:
    """USD per Fargate task-hour for the task size, architecture and capacity (Spot as its discount)."""
    vcpu, gb = workload.task_cpu / 1024, workload.task_memory_mb / 1024
    arch = "arm" if a.ecs_architecture == "arm" else "x86"
    rate = vcpu * p[f"fargate_vcpu_hour_{arch}"] + gb * p[f"fargate_gb_hour_{arch}"]
    return rate * (1 - p["fargate_spot_discount"]) if a.spot else rate


@dataclass(frozen=True)
class _Usage:
    """What a variant's workers use in a month, beyond the API's share."""

    lambda_requests: float = 0.0
    lambda_gbs: float = 0.0
    poller_hours: float = 0.0  # provisioned SQS pollers (Event Poller Unit-hours)
    instance_vcpu_hours: float = 0.0  # lambda-mi: the capacity provider's instances
    logs_gb: float = 0.0
    sqs_requests: float = 0.0
    task_hours: float = 0.0


def _lambda_usage(workload: Workload, orders: float, a: Assumptions) -> _Usage:
    """Invocations (flash-sale orders in full batches, the rest one per invoke), GB-s with INIT, and the
    mapping's SQS requests."""
    latency = workload.payment_latency_s
    batch = workload.batch_size if workload.variant in SQS_MAPPED else 1
    full = orders * a.flash_share / batch
    single = orders * (1 - a.flash_share)
    invocations = full + single
    per_full = (
        math.ceil(batch / workload.payment_slots) * latency if workload.batch_paid_concurrently else batch * latency
    )
    duration = full * per_full + single * latency + invocations * a.invocation_overhead_ms / 1000
    init = invocations * a.cold_start_share * a.init_s
    sqs_requests = poller_hours = 0.0
    if workload.variant in SQS_MAPPED:
        sqs_requests += orders + 2 * invocations  # SNS delivery, the mapping's receive and delete per batch
        idle = workload.min_pollers if workload.variant == "lambda-sqs-provisioned" else ESM_IDLE_POLLERS
        sqs_requests += idle * HOURS_PER_MONTH * 3600 / LONG_POLL_S
    if workload.variant == "lambda-sqs-provisioned":
        # The minimum pollers all month, and one more per 10 invokes the sales keep busy: an upper bound, since
        # the sales' first invokes run on the minimum's (a month has no sale timeline; sale_cost counts exactly).
        sale_hours = full * per_full / 3600
        poller_hours = workload.min_pollers * HOURS_PER_MONTH + sale_hours / aws.LAMBDA_SQS_INVOKES_PER_POLLER
    if workload.variant == "lambda-mi":
        # No duration charge: the instances. The 3 environments all month, and the environments the sales keep
        # busy (an upper bound, as for pollers: the sales' first requests run on those 3).
        env_hours = workload.mi_min_envs * HOURS_PER_MONTH + full * per_full / 3600 / workload.mi_concurrency
        return _Usage(
            lambda_requests=invocations,
            logs_gb=invocations * a.log_bytes_per_invocation / 1e9,
            sqs_requests=sqs_requests,
            instance_vcpu_hours=env_hours * workload.mi_vcpus_per_env,
        )
    return _Usage(
        lambda_requests=invocations,
        lambda_gbs=(duration + init) * workload.lambda_memory_mb / 1024,
        poller_hours=poller_hours,
        logs_gb=invocations * a.log_bytes_per_invocation / 1e9,
        sqs_requests=sqs_requests,
    )


def _ecs_usage(workload: Workload, orders: float, a: Assumptions) -> _Usage:
    """Task-hours: the work at each task's payment slots, what keeps a task up between orders (or the
    ``minTasks`` floor), and each sale's scale-in tail; SQS requests by batches and long polls."""
    per_task = min(workload.worker_concurrency, workload.payment_slots)
    busy_hours = orders * workload.payment_latency_s / per_task / 3600
    minutes_between = HOURS_PER_MONTH * 60 / max(orders * (1 - a.flash_share), 1e-9)
    tail_h = a.scale_in_tail_min / 60
    if workload.min_tasks:
        floor_hours = workload.min_tasks * HOURS_PER_MONTH
    elif minutes_between < a.scale_in_tail_min:
        floor_hours = HOURS_PER_MONTH  # orders come more often than a task can scale in: one task stays up
    else:
        floor_hours = orders * (1 - a.flash_share) * tail_h  # each lone order wakes a task for a tail
    sale_tasks = min(
        workload.max_tasks,
        max(1, math.ceil(orders * a.flash_share / max(a.sales_per_month, 1) / workload.backlog_per_task_target)),
    )
    tails = a.sales_per_month * sale_tasks * tail_h if orders * a.flash_share else 0.0
    task_hours = floor_hours + busy_hours + tails
    return _Usage(
        # SNS delivery, receive and delete in batches of up to 10, and the receiver's empty long polls
        sqs_requests=orders * (1 + 2 / 10) + task_hours * 3600 / LONG_POLL_S,
        logs_gb=orders * a.log_bytes_per_order_ecs / 1e9,
        task_hours=task_hours,
    )


def monthly_cost(workload: Workload, orders: float, prices: Prices, a: Assumptions = Assumptions()) -> dict[str, Any]:
    """USD per month by service for ``orders`` orders a month on ``workload``'s variant."""
    p, free = prices, a.free_tier
    lam_gbs = p["lambda_gb_second_arm"] if a.architecture == "arm" else p["lambda_gb_second_x86"]
    lines: dict[str, float] = {}
    # -- shared by both variants: the API on Lambda, SNS, DynamoDB, HTTP API
    requests = orders * (1 + a.polls_per_order)
    api_gbs = requests * a.api_ms / 1000 * a.api_memory_mb / 1024
    lines["http_api"] = requests / 1e6 * p["http_api_request_per_million"]
    lines["sns"] = (
        _billable(orders * SNS_PUBLISHES_PER_ORDER, p.free["sns_publishes"], free) / 1e6 * p["sns_publish_per_million"]
    )
    lines["dynamodb"] = (
        orders * WRU_PER_ORDER / 1e6 * p["dynamodb_wru_per_million"]
        + (orders * RRU_PER_ORDER + orders * a.polls_per_order * 0.5) / 1e6 * p["dynamodb_rru_per_million"]
    )
    usage = (
        _lambda_usage(workload, orders, a) if workload.variant.startswith("lambda") else _ecs_usage(workload, orders, a)
    )
    task_hours, sqs_requests = usage.task_hours, usage.sqs_requests
    lambda_requests, lambda_gbs = requests + usage.lambda_requests, api_gbs + usage.lambda_gbs
    logs_gb = requests * a.log_bytes_per_invocation / 1e9 + usage.logs_gb
    rate = task_hour_price(workload, p, a)
    lines["fargate"] = task_hours * rate
    lines["public_ipv4"] = task_hours * p["public_ipv4_hour"] if a.public_ipv4_per_task else 0.0
    lines["lambda_requests"] = (
        _billable(lambda_requests, p.free["lambda_requests"], free) / 1e6 * p["lambda_request_per_million"]
    )
    lines["lambda_compute"] = _billable(lambda_gbs, p.free["lambda_gb_seconds"], free) * lam_gbs
    lines["sqs"] = _billable(sqs_requests, p.free["sqs_requests"], free) / 1e6 * p["sqs_request_per_million"]
    lines["lambda_pollers"] = usage.poller_hours * p["lambda_sqs_epu_hour"]
    lines["lambda_instances"] = (
        usage.instance_vcpu_hours * p["lambda_mi_vcpu_hour_arm"] * (1 + p["lambda_mi_management_fee"])
    )
    # The lambda-mi stack's VPC: interface endpoints for SNS and CloudWatch Logs in each of its subnets' AZs
    # (constructs_lib/managed_instance_workers.py; DynamoDB's gateway endpoint is free), all month.
    endpoint_azs = MI_INTERFACE_ENDPOINTS * MI_AZS if workload.variant == "lambda-mi" else 0
    lines["vpc_endpoints"] = endpoint_azs * HOURS_PER_MONTH * p["vpc_interface_endpoint_hour"]
    lines["cloudwatch"] = (
        _billable(logs_gb, p.free["cloudwatch_logs_gb"], free) * p["cloudwatch_logs_ingest_per_gb"]
        + _billable(a.alarms, p.free["cloudwatch_alarms"], free) * p["cloudwatch_alarm_month"]
        + _billable(a.custom_metrics, p.free["cloudwatch_metrics"], free) * p["cloudwatch_metric_month"]
    )
    total = sum(lines.values())
    return {
        "variant": workload.variant,
        "orders": orders,
        "total_usd": total,
        "per_order_usd": total / orders if orders else None,
        "by_service_usd": lines,
        "lambda_gb_seconds": lambda_gbs,
        "lambda_requests": lambda_requests,
        "task_hours": task_hours,
        "sqs_requests": sqs_requests,
    }


def break_even(
    cost_a: Callable[[float], float], cost_b: Callable[[float], float], lo: float = 1e3, hi: float = 1e9
) -> float | None:
    """The smallest monthly volume in [lo, hi] where the cheaper of two variants changes, or None.

    Scans on a log grid, then bisects the first sign change; costs are piecewise (free tiers,
    always-on tasks), so there can be more than one crossing: the first is returned.
    """
    grid = [lo * (hi / lo) ** (i / 400) for i in range(401)]
    diff = [cost_a(n) - cost_b(n) for n in grid]
    for i in range(400):
        if diff[i] == 0:
            return grid[i]
        if (diff[i] < 0) != (diff[i + 1] < 0):
            a, b = grid[i], grid[i + 1]
            for _ in range(60):
                mid = (a + b) / 2
                if (cost_a(mid) - cost_b(mid) < 0) == (diff[i] < 0):
                    a = mid
                else:
                    b = mid
            return (a + b) / 2
    return None


def assumptions_table(a: Assumptions) -> dict[str, Any]:
    return asdict(a)


def hours_above(result: Any, per_unit: int, floor: int) -> float:
    """Unit-hours a sale adds above ``floor`` units (pollers, environments), each serving ``per_unit`` busy
    workers: ceil(busy / per_unit) beyond the floor, over the simulation's samples."""
    hours = 0.0
    for i in range(1, len(result.times)):
        units = math.ceil(result.workers[i - 1] / per_unit)
        hours += max(0, units - floor) * (result.times[i] - result.times[i - 1]) / 3600
    return hours


def sale_cost(workload: Workload, result: Any, orders: int, prices: Prices, a: Assumptions = Assumptions()) -> float:
    """USD one flash sale adds: the workers it ran (task-seconds or busy environment GB-s) and each order's requests.

    Free tiers are left out: a sale is priced as the marginal cost on top of a month's other traffic.
    """
    p = prices
    per_order = (
        (1 + a.polls_per_order) * p["http_api_request_per_million"] / 1e6
        + SNS_PUBLISHES_PER_ORDER * p["sns_publish_per_million"] / 1e6
        + WRU_PER_ORDER * p["dynamodb_wru_per_million"] / 1e6
        + RRU_PER_ORDER * p["dynamodb_rru_per_million"] / 1e6
        + (1 + a.polls_per_order) * (p["lambda_request_per_million"] / 1e6)
    )
    lam_gbs = p["lambda_gb_second_arm"] if a.architecture == "arm" else p["lambda_gb_second_x86"]
    api = orders * (1 + a.polls_per_order) * a.api_ms / 1000 * a.api_memory_mb / 1024 * lam_gbs
    if workload.variant == "ecs":
        rate = task_hour_price(workload, p, a)
        ipv4 = p["public_ipv4_hour"] if a.public_ipv4_per_task else 0.0
        # Tasks bill from start to stop: add the scale-in tail after the drain.
        task_hours = result.worker_seconds / 3600 + result.peak_workers * a.scale_in_tail_min / 60
        workers = task_hours * (rate + ipv4)
        sqs = orders * (1 + 2 / 10) * p["sqs_request_per_million"] / 1e6
    else:
        mem = workload.lambda_memory_mb / 1024
        gbs = (result.worker_seconds + result.cold_starts * a.init_s) * mem
        workers = gbs * lam_gbs + result.invocations * p["lambda_request_per_million"] / 1e6
        if workload.variant == "lambda-sqs-provisioned":  # pollers the sale adds above the (monthly) minimum
            extra_pollers = hours_above(result, aws.LAMBDA_SQS_INVOKES_PER_POLLER, workload.min_pollers)
            workers += extra_pollers * p["lambda_sqs_epu_hour"]
        if workload.variant == "lambda-mi":  # no duration charge: environments added above the 3, as instances
            workers = result.invocations * p["lambda_request_per_million"] / 1e6
            extra = hours_above(result, workload.mi_concurrency, workload.mi_min_envs) * workload.mi_vcpus_per_env
            workers += extra * p["lambda_mi_vcpu_hour_arm"] * (1 + p["lambda_mi_management_fee"])
        sqs = (
            (orders + 2 * result.invocations) * p["sqs_request_per_million"] / 1e6
            if workload.variant in SQS_MAPPED
            else 0.0
        )
    return orders * per_order + api + workers + sqs
