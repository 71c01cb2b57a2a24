"""The workers of each variant, started from what the deployment says (the worker factory)."""

from __future__ import annotations

import json
import statistics
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner import aws
from planner.config import AppConfig
from planner.model import Timing, Workload
from sandbox.emulator.ecs import EcsService
from sandbox.emulator.event_sources import InvokeObserver, PollerGroup, SnsAsyncInvoker, SqsEventSource
from sandbox.emulator.lambda_pool import LambdaPool
from sandbox.emulator.process import ProcessEnv, Scale
from sandbox.emulator.queues import Depth, SharedDepth, async_queue_name, queue_depth
from sandbox.emulator.schedules import Scheduler, schedules
from sandbox.stack.latency import Overheads
from sandbox.stack.specs import LambdaSpec, ManagedInstances, ScalingPolicy, mapping_pollers, task_definition
from sandbox.stack.topology import Pipeline
from stacks import outputs


@dataclass
class Workers:
    """One variant's workers as the run sees them."""

    compute: str
    busy: Any  # () -> number of tasks running / environments in use
    backlog_queue: str  # whose depth is the backlog (the orders queue, or the async-invoke queue)
    workload: Workload  # the model of this deployment, in sandbox time
    timing: Timing
    details: Any  # () -> variant-specific summary fields
    pool: LambdaPool | None = None
    service: EcsService | None = None
    invoker: SnsAsyncInvoker | None = None
    depth: SharedDepth | None = None  # the backlog queue's depth, shared by the control plane's readers

    def backlog(self, sqs: Any, *, fresh: bool = False) -> Depth:
        """What the variant has still to do: its queue, and for async invokes also the events the invoker
        holds (waiting for a retry, or being invoked). ``fresh``: not a shared reading (``SharedDepth``)."""
        depth = self.depth(fresh=fresh) if self.depth is not None else queue_depth(sqs, self.backlog_queue)
        if self.invoker is not None:
            depth = depth.plus_in_flight(self.invoker.pending + self.busy())
        return depth

    def kill(self, count: int) -> int:
        """kill -9 ``count`` busy workers: Lambda environments mid-invoke, or running ECS tasks."""
        if self.pool is not None:
            return self.pool.kill(count)
        assert self.service is not None
        return self.service.kill(count)


def _sandbox_workload(config: AppConfig, compute: str, k: Scale, env: dict[str, str]) -> Workload:
    """The model of the deployed config, with the payment latency the processes really run (scaled)."""
    from dataclasses import replace

    latency_ms = int(ProcessEnv(base={}, scale=k).for_runtime(env)["PAYMENT_LATENCY_MS"])
    return replace(Workload.from_config(config, compute), payment_latency_s=latency_ms / 1000)


def take_over_mappings(lam: Any, function_name: str) -> list[dict[str, Any]]:
    """The function's event source mappings, disabled: moto would try to run the function; the control plane does."""
    mappings: list[dict[str, Any]] = lam.list_event_source_mappings(FunctionName=function_name)["EventSourceMappings"]
    for m in mappings:
        lam.update_event_source_mapping(UUID=m["UUID"], Enabled=False)
    return mappings


def function_pool(
    p: Pipeline, fn: dict[str, Any], *, max_envs: int, workdir: Path, stack: ExitStack, env: dict[str, str]
) -> LambdaPool:
    """Execution environments of a deployed function (its handler, timeout, memory), closed with the run."""
    pool = LambdaPool(
        handler=fn["Handler"],
        name=fn["FunctionName"],
        env=p.penv.for_runtime(env, sandbox_host=True),
        # Not time-scaled: the timeout guards CPU work (imports, clients), which the scale does not shorten.
        timeout_s=float(fn["Timeout"]),
        memory_mb=fn["MemorySize"],
        max_envs=max_envs,
        log_dir=workdir / "logs",
    )
    stack.callback(pool.close)
    return pool


# The mapping's long poll. AWS's pollers wait up to 20 s; a long poll returns at the first message either
# way, so the wait only sets how often an idle poller asks (5 s: a fifth of the requests a 1 s wait made)
# and how long a stopping poller may take to notice.
POLL_WAIT_S = 5


def queue_event_source(
    p: Pipeline,
    *,
    queue_url: str,
    queue_arn: str,
    pool: LambdaPool,
    mapping: dict[str, Any],
    max_concurrency: int,
    k: Scale,
    managed: ManagedInstances | None = None,
) -> SqsEventSource:
    """A mapping's poller on its queue, with the queue's visibility timeout time-scaled."""
    sqs = p.client("sqs")
    visibility = int(
        sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])["Attributes"][
            "VisibilityTimeout"
        ]
    )
    return SqsEventSource(
        sqs=sqs,
        queue_url=queue_url,
        queue_arn=queue_arn,
        pool=pool,
        batch_size=int(mapping["BatchSize"]),
        visibility_s=max(2, int(visibility / k.k)),
        wait_s=POLL_WAIT_S,
        scale=k,
        max_concurrency=max_concurrency,
        pollers=mapping_pollers(mapping),
        capacity=managed.capacity if managed is not None else None,
    )


def start_lambda(
    p: Pipeline,
    workdir: Path,
    stack: ExitStack,
    k: Scale,
    progress: Any,
    *,
    observer: InvokeObserver | None = None,
    overheads: Overheads | None = None,
) -> Workers:
    """``observer``: told of each async invoke's first attempt and dead-lettering (a fault harness's hook).
    ``overheads``: the emulator's request time per record and invocation, measured before the sale, for the
    model (none: the model leaves it out)."""
    lam = p.client("lambda")
    spec = LambdaSpec.read(lam, p.deployment)
    take_over_mappings(lam, spec.name)
    compute, mapped = spec.compute, spec.mapped_concurrency
    max_envs = int(spec.reserved or 1000)
    if compute != "lambda-sns":
        max_envs = min(max_envs, mapped)
    # Managed Instances: a worker is one request (one process, as Python runs them), all the environments'
    # processes started before the sale (Lambda starts environments before they take requests); which of them
    # may run is what the environments' scaling allows (the mapping's ``capacity``).
    managed = ManagedInstances.from_template(p.deployment.service_template()) if compute == "lambda-mi" else None
    if managed is not None:
        max_envs = min(mapped, managed.most)
    env = spec.environment
    pool = function_pool(p, spec.function, max_envs=max_envs, workdir=workdir, stack=stack, env=env)
    if managed is not None:
        pool.warm(max_envs, cold=False)
    backlog_queue = p.queue_url
    # Every Lambda variant maps the orders queue: sqs reads it, sns drains what another variant left there.
    source = queue_event_source(
        p,
        queue_url=p.queue_url,
        queue_arn=p.queue_arn,
        pool=pool,
        mapping=spec.mapping,
        max_concurrency=max_envs if compute != "lambda-sns" else min(mapped, max_envs),
        k=k,
        managed=managed,
    )
    poller: PollerGroup = source
    if compute == "lambda-sns":
        source.start(min(mapped, max_envs))
        stack.callback(source.close)
        backlog_queue, poller = async_invoker(p, spec, pool, k, observer)
    poller.start(max_envs)
    stack.callback(poller.close)
    invoker = poller if isinstance(poller, SnsAsyncInvoker) else None
    if managed is not None:
        progress(
            f"lambda-mi: {managed.min_envs}..{managed.max_envs} environments x {managed.concurrency} requests "
            f"({max_envs} processes started), mapping maximum {mapped}"
        )
    else:
        progress(f"lambda: up to {max_envs} environments ({compute})")
    workload = _sandbox_workload(p.config, compute, k, env)
    return Workers(
        compute=compute,
        busy=lambda: pool.busy,
        backlog_queue=backlog_queue,
        workload=workload,
        timing=_timing(k, overheads),
        details=lambda: {
            **_overhead_details(overheads),
            "invocations": invocation_figures(pool.invocations, workload, overheads),
            "cold_starts": len(pool.cold_starts),
            "init_ms": {
                "p50": statistics.median(pool.cold_starts) if pool.cold_starts else 0.0,
                "max": max(pool.cold_starts, default=0.0),
            },
            "concurrency_limit": pool.max_envs,
        },
        pool=pool,
        invoker=invoker,
        depth=SharedDepth(p.client("sqs"), backlog_queue),
    )


def async_invoker(
    p: Pipeline, spec: LambdaSpec, pool: LambdaPool, k: Scale, observer: InvokeObserver | None
) -> tuple[str, SnsAsyncInvoker]:
    """SNS puts the function's events on its async-invoke queue (``sandbox.emulator.cfn_resources``); retries,
    event age and the on-failure destination are the function's EventInvokeConfig, as Lambda reads them.
    Returns (the queue, the invoker)."""
    sqs = p.client("sqs")
    assert spec.invoke_config is not None
    queue_url = sqs.create_queue(QueueName=async_queue_name(spec.name))["QueueUrl"]
    on_failure = spec.invoke_config["DestinationConfig"]["OnFailure"]["Destination"]
    invoker = SnsAsyncInvoker(
        sqs=sqs,
        tap_url=queue_url,
        pool=pool,
        retries=int(spec.invoke_config["MaximumRetryAttempts"]),
        max_age_s=k.seconds(float(spec.invoke_config["MaximumEventAgeInSeconds"])),
        dlq_url=sqs.get_queue_url(QueueName=on_failure.rsplit(":", 1)[1])["QueueUrl"],
        scale=k,
        observer=observer,
    )
    return queue_url, invoker


CONSUMERS = (outputs.TRACKING_PUSH_FUNCTION_NAME, outputs.NOTIFICATIONS_FUNCTION_NAME)


def start_consumers(p: Pipeline, workdir: Path, stack: ExitStack, k: Scale, progress: Any) -> list[str]:
    """The other Lambda consumers of the topic (tracking pusher, notifications), each on its own queue:
    environments capped by the function's reserved concurrency, fed by its event source mapping."""
    lam, sqs = p.client("lambda"), p.client("sqs")
    started = []
    for output in CONSUMERS:
        try:
            name = p.deployment.service(output)
        except KeyError:
            continue
        fn = lam.get_function_configuration(FunctionName=name)
        [mapping] = take_over_mappings(lam, name)
        queue_arn = mapping["EventSourceArn"]
        queue_url = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[1])["QueueUrl"]
        reserved = lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions") or 2
        envs = min(int(reserved), 2)  # two cores: two environments per consumer keep up with the sale here
        env = dict(fn["Environment"]["Variables"])
        if p.api is not None:
            env["WEBSOCKET_MANAGEMENT_ENDPOINT"] = p.api.management_endpoint
        pool = function_pool(p, fn, max_envs=envs, workdir=workdir, stack=stack, env=env)
        poller = queue_event_source(
            p, queue_url=queue_url, queue_arn=queue_arn, pool=pool, mapping=mapping, max_concurrency=envs, k=k
        )
        poller.start(envs)
        stack.callback(poller.close)
        started.append(fn["Handler"])
    if started:
        progress(f"consumers: {', '.join(started)}")
    return started


def start_schedules(p: Pipeline, workdir: Path, stack: ExitStack, k: Scale, progress: Any) -> Scheduler:
    """The service template's EventBridge schedules, fired on time into their Lambda targets (moto never
    fires them): the reconciler every minute, time-scaled (sandbox/emulator/schedules.py)."""
    lam = p.client("lambda")
    template = p.deployment.service_template()
    # The target's physical name through the stack output that names it (moto's DescribeStackResource
    # fails on a stack holding resources it does not model, the schedule itself among them).
    named_by = {
        o["Value"]["Ref"]: key
        for key, o in template.get("Outputs", {}).items()
        if isinstance(o.get("Value"), dict) and "Ref" in o["Value"]
    }
    pools: dict[str, LambdaPool] = {}
    stop = threading.Event()
    stack.callback(stop.set)

    def invoke(logical_id: str, payload: str) -> dict[str, Any]:
        if logical_id not in pools:
            if logical_id not in named_by:
                raise RuntimeError(f"no stack output names {logical_id}: the sandbox cannot find the target")
            fn = lam.get_function_configuration(FunctionName=p.deployment.service(named_by[logical_id]))
            env = dict(fn["Environment"]["Variables"])
            pools[logical_id] = function_pool(p, fn, max_envs=1, workdir=workdir, stack=stack, env=env)
        pool = pools[logical_id]
        environment = pool.acquire(stop)
        if environment is None:
            return {"error": "stopped"}
        try:
            out = pool.invoke(environment, json.loads(payload))
        finally:
            pool.release(environment)
        return dict(out.get("result") or {}) if out.get("ok") else {"error": str(out.get("error"))}

    scheduler = Scheduler(schedules(template), invoke, k=k.k)
    scheduler.start()
    stack.callback(scheduler.close)
    if scheduler.firings or scheduler.skipped:
        fired = [f"{f.schedule.logical_id} every {f.period_s:g} s" for f in scheduler.firings]
        progress(
            f"schedules: {', '.join(fired) or 'none fired'}"
            + (f"; not fired: {scheduler.skipped}" if scheduler.skipped else "")
        )
    return scheduler


def _timing(k: Scale, overheads: Overheads | None, **kw: Any) -> Timing:
    if overheads is None:
        return Timing.sandbox(k.k, **kw)
    return Timing.sandbox(k.k, record_overhead_s=overheads.record_s, invoke_overhead_s=overheads.invocation_s, **kw)


def _overhead_details(overheads: Overheads | None) -> dict[str, Any]:
    return {"request_overhead": overheads.describe()} if overheads is not None else {}


def invocation_figures(
    invocations: list[tuple[int, float]], workload: Workload, overheads: Overheads | None
) -> dict[str, Any]:
    """The sale's invokes that paid their whole batch, against the model's: the median seconds beyond the
    payment each took (measured), and what its records' requests predict (``sandbox.stack.latency``; the
    mapping's receive and delete are outside an invoke, so in neither figure)."""
    if not invocations:
        return {"count": 0}
    beyond = [
        seconds
        - aws.lambda_batch_seconds(
            records=records,
            payment_slots=workload.payment_slots,
            payment_latency_s=workload.payment_latency_s,
            concurrent=workload.batch_paid_concurrently or records == 1,
        )
        for records, seconds in invocations
    ]
    records = sum(r for r, _ in invocations) / len(invocations)
    out: dict[str, Any] = {
        "count": len(invocations),
        "mean_records": round(records, 2),
        "beyond_payment_ms": round(1000 * statistics.median(beyond), 1),
    }
    if overheads is not None:
        out["model_beyond_payment_ms"] = round(1000 * records * overheads.record_s, 1)
    return out


def start_ecs(
    p: Pipeline,
    workdir: Path,
    stack: ExitStack,
    k: Scale,
    progress: Any,
    t0: float,
    *,
    overheads: Overheads | None = None,
) -> Workers:
    env, command, stop_timeout = task_definition(p.client("ecs"), p.deployment)
    policy = ScalingPolicy.from_template(p.deployment.service_template())
    depth = SharedDepth(p.client("sqs"), p.queue_url)
    service = EcsService(
        depth=depth,
        env=p.penv.for_runtime(env),
        command=command,
        stop_timeout_s=stop_timeout,
        policy=policy,
        sqs=p.client("sqs"),
        queue_url=p.queue_url,
        scale=k,
        log_dir=workdir / "logs",
    )
    service.start()
    stack.callback(service.close)
    progress(
        f"ecs: tasks {policy.min_tasks}..{policy.max_tasks}, target backlog/task {policy.target:g}, "
        f"wake at {policy.wake_depth} visible"
    )
    return Workers(
        compute="ecs",
        busy=service.running,
        backlog_queue=p.queue_url,
        workload=_sandbox_workload(p.config, "ecs", k, env),
        timing=_timing(k, overheads, first_evaluation_s=service.started_at - t0),
        details=lambda: {
            **_overhead_details(overheads),
            "scaling": {
                "min_tasks": policy.min_tasks,
                "max_tasks": policy.max_tasks,
                "target_backlog_per_task": policy.target,
                "peak_backlog_seen_by_autoscaler": service.peak_backlog_seen,
                "activities": [
                    {"t": round(a[0] - t0, 2), "from": a[1], "to": a[2], "why": a[3]} for a in service.activities
                ],
            },
        },
        service=service,
        depth=depth,
    )
