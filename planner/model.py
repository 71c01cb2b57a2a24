"""A flash sale through one deployment, simulated: backlog, workers and each order's wait over time.

Independent of any run: the inputs are the deployment (``Workload``, from the same
frozen config ``app.py`` builds), how fast AWS (or the local sandbox) reacts
(``Timing``, in the sandbox with the emulator's request time timed before the
sale) and when orders arrive. Workers pay at the physical limit of their
payment slots; scaling follows ``planner.aws``. Nothing here is read from a
measurement of the run it predicts.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from planner import aws
from planner.policy import wake_steps

VARIANTS = ("ecs", "lambda-sqs", "lambda-sqs-provisioned", "lambda-sns", "lambda-mi")
SQS_MAPPED = ("lambda-sqs", "lambda-sqs-provisioned", "lambda-mi")  # fed batches by an SQS event source mapping
ACCOUNT_CONCURRENCY = 1000  # the default account quota: what an unreserved function can reach at most


@dataclass(frozen=True)
class Workload:
    """The deployment's numbers that decide capacity and scaling (a projection of the app's config)."""

    variant: str
    payment_slots: int = 5
    payment_latency_s: float = 3.0
    # ecs
    min_tasks: int = 0
    max_tasks: int = 25
    worker_concurrency: int = 10
    backlog_per_task_target: float = 100.0
    wake_queue_depth: int = 1
    scale_out_cooldown_s: float = 60.0
    scale_in_cooldown_s: float = 300.0
    task_cpu: int = 256
    task_memory_mb: int = 512
    # lambda
    reserved_concurrency: int = 50
    max_concurrency: int = 50
    batch_size: int = 5
    min_pollers: int = 2  # lambda-sqs-provisioned
    max_pollers: int = 5
    # lambda-mi: environments of 1 vCPU / 2 GB (the smallest), each running mi_concurrency requests (processes)
    mi_min_envs: int = aws.LAMBDA_MI_MIN_ENVIRONMENTS
    mi_max_envs: int = 10
    mi_concurrency: int = 5
    mi_vcpus_per_env: float = 1.0
    lambda_memory_mb: int = 512
    batch_paid_concurrently: bool = True  # how the runtime pays a batch (worker_lambda: AsyncBatchProcessor)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant {self.variant!r}: expected one of {', '.join(VARIANTS)}")

    @classmethod
    def from_config(cls, cfg: Any, variant: str | None = None) -> Workload:
        """From the app's ``AppConfig`` (``planner.config``); ``variant`` defaults to what the config deploys."""
        return cls(
            variant=variant or cfg.variant,
            payment_slots=cfg.payment_slots,
            payment_latency_s=cfg.payment_latency_ms / 1000,
            min_tasks=cfg.min_tasks,
            max_tasks=cfg.max_tasks,
            worker_concurrency=cfg.worker_concurrency,
            backlog_per_task_target=float(cfg.backlog_per_task_target),
            wake_queue_depth=cfg.wake_queue_depth,
            scale_out_cooldown_s=float(cfg.scale_out_cooldown_s),
            scale_in_cooldown_s=float(cfg.scale_in_cooldown_s),
            task_cpu=int(cfg.task_cpu),
            task_memory_mb=cfg.task_memory_mb,
            reserved_concurrency=cfg.reserved_concurrency,
            # 0 (provisioned pollers configured): lambda-sqs modelled at what the reservation allows
            max_concurrency=cfg.max_concurrency or min(cfg.reserved_concurrency or ACCOUNT_CONCURRENCY, 1000),
            batch_size=cfg.batch_size,
            min_pollers=cfg.min_pollers,
            max_pollers=cfg.max_pollers,
            lambda_memory_mb=cfg.mi_memory_mb if (variant or cfg.variant) == "lambda-mi" else cfg.lambda_memory_mb,
            mi_min_envs=cfg.mi_min_envs,
            mi_max_envs=cfg.mi_max_envs,
            mi_concurrency=cfg.mi_concurrency,
            mi_vcpus_per_env=float(cfg.mi_vcpus_per_env),
        )

    @property
    def worker_capacity_per_s(self) -> float:
        """What one task or environment pays per second at its payment slots' limit."""
        return self.worker_capacity_with_requests_per_s(Timing.aws())

    def worker_capacity_with_requests_per_s(self, timing: Timing) -> float:
        """The same once every record and invocation also spends the request time ``timing`` gives it, as
        the simulation spends it (full batches; the AWS timing gives none)."""
        if self.variant == "ecs":  # each consumer slot pays and records, one order at a time
            return aws.ecs_task_capacity_per_s(
                worker_concurrency=self.worker_concurrency,
                payment_slots=self.payment_slots,
                payment_latency_s=self.payment_latency_s,
                per_record_s=timing.record_overhead_s,
            )
        take = 1 if self.variant == "lambda-sns" else self.batch_size  # SNS: one event per invoke
        return aws.lambda_env_capacity_per_s(
            batch_size=take,
            payment_slots=self.payment_slots,
            payment_latency_s=self.payment_latency_s,
            concurrent=self.batch_paid_concurrently or take == 1,
            per_record_s=timing.record_overhead_s,
            per_invoke_s=timing.invoke_overhead_s,
        )

    @property
    def max_workers(self) -> int:
        if self.variant == "ecs":
            return self.max_tasks
        reserved = self.reserved_concurrency or ACCOUNT_CONCURRENCY
        if self.variant == "lambda-sqs":
            return min(self.max_concurrency, reserved)
        if self.variant == "lambda-sqs-provisioned":
            return min(aws.lambda_sqs_provisioned_ceiling(self.max_pollers), reserved)
        if self.variant == "lambda-mi":  # a worker is one request (process); the mapping's maximum caps them too
            return min(self.max_concurrency, self.mi_max_envs * self.mi_concurrency)
        return reserved

    @property
    def capacity_per_s(self) -> float:
        """The most the deployment pays per second with every worker running."""
        return self.max_workers * self.worker_capacity_per_s


@dataclass(frozen=True)
class Timing:
    """How quickly the platform reacts. ``aws()`` for a prediction on AWS, ``sandbox(k)`` for a local run."""

    metric_period_s: float = aws.METRIC_PERIOD_S
    metric_lag_s: float = aws.SQS_METRIC_LAG_S
    task_start_s: float = aws.FARGATE_TASK_START_S
    cold_start_s: float = aws.LAMBDA_COLD_START_S
    serial_cold_starts: bool = False  # the sandbox starts one interpreter at a time
    first_evaluation_s: float | None = None  # when the first metric period closes (default: one period in)
    time_scale: float = 1.0  # AWS rates (per minute, per 10 s) run this many times faster
    # What a worker spends on the pipeline's own requests besides the payment: per record (the handler's
    # store and topic calls) and per invocation (the mapping's receive and delete). On AWS these are tens of
    # milliseconds against a payment of seconds, and the AWS model leaves them out; in the sandbox every one
    # is a request to a one-core emulator, measured before the sale (sandbox.stack.latency).
    record_overhead_s: float = 0.0
    invoke_overhead_s: float = 0.0

    @classmethod
    def aws(cls, **overrides: float) -> Timing:
        return cls(**overrides)  # type: ignore[arg-type]

    @classmethod
    def sandbox(
        cls,
        k: float,
        *,
        first_evaluation_s: float | None = None,
        record_overhead_s: float = 0.0,
        invoke_overhead_s: float = 0.0,
    ) -> Timing:
        """The local control plane: scaled periods, no metric lag, local processes instead of Fargate pulls,
        and the emulator's request latency on every record and invocation."""
        return cls(
            metric_period_s=max(0.5, aws.METRIC_PERIOD_S / k),
            metric_lag_s=0.0,
            task_start_s=SANDBOX_TASK_START_S,
            cold_start_s=SANDBOX_COLD_START_S,
            serial_cold_starts=True,
            first_evaluation_s=first_evaluation_s,
            time_scale=k,
            record_overhead_s=record_overhead_s,
            invoke_overhead_s=invoke_overhead_s,
        )


SANDBOX_TASK_START_S = 1.0
"""A local ECS task: a fresh interpreter importing boto3 and the worker, then its first long poll."""
SANDBOX_COLD_START_S = 0.5
"""A local Lambda environment: a fresh interpreter importing the handler (cf. `make bench`'s cold-start bench)."""


@dataclass
class Result:
    """What the simulation saw, sampled each ``step`` seconds, and its headline figures."""

    variant: str
    times: list[float] = field(default_factory=list)
    visible: list[int] = field(default_factory=list)
    inflight: list[int] = field(default_factory=list)
    workers: list[int] = field(default_factory=list)
    paid: list[int] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)  # accept -> paid, per order
    load_end_s: float = 0.0
    drained_at_s: float | None = None
    first_scale_out_s: float | None = None
    full_capacity_s: float | None = None  # ECS: every task running; Lambda: the scaling allows every environment
    worker_seconds: float = 0.0  # ECS task-seconds running, or Lambda environment-seconds busy
    invocations: int = 0
    cold_starts: int = 0
    scaling: list[tuple[float, int, int, str]] = field(default_factory=list)

    @property
    def peak_backlog(self) -> int:
        return max(self.visible, default=0)

    @property
    def peak_workers(self) -> int:
        return max(self.workers, default=0)

    @property
    def backlog_at_load_end(self) -> int:
        i = bisect.bisect_right(self.times, self.load_end_s) - 1
        return self.visible[i] + self.inflight[i] if i >= 0 else 0

    @property
    def drain_seconds(self) -> float | None:
        """From the end of the load to an empty backlog (None: not drained within the horizon)."""
        if self.drained_at_s is None:
            return None
        return max(0.0, self.drained_at_s - self.load_end_s)

    def wait_percentile(self, q: float) -> float:
        if not self.waits:
            return 0.0
        ordered = sorted(self.waits)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]

    def summary(self) -> dict[str, Any]:
        return {
            "peak_backlog": self.peak_backlog,
            "backlog_at_load_end": self.backlog_at_load_end,
            "drain_seconds": self.drain_seconds,
            "peak_workers": self.peak_workers,
            "first_scale_out_s": self.first_scale_out_s,
            "full_capacity_s": self.full_capacity_s,
            "wait_p50_s": self.wait_percentile(50),
            "wait_p99_s": self.wait_percentile(99),
            "worker_seconds": self.worker_seconds,
            "invocations": self.invocations,
            "cold_starts": self.cold_starts,
        }


def duration_text(seconds: float | None) -> str:
    """A drain or a wait as people read it: seconds under two minutes, minutes above; None is not drained."""
    if seconds is None:
        return "not drained"
    return f"{seconds:,.0f} s" if seconds < 120 else f"{seconds / 60:,.1f} min"


def arrivals_from_profile(segments: Iterable[tuple[float, float]], start_s: float = 0.0) -> list[float]:
    """Evenly spaced arrival times for (orders per second, seconds) segments, one after another."""
    out: list[float] = []
    t0 = start_s
    for rate, seconds in segments:
        n = round(rate * seconds)
        out += [t0 + (i + 0.5) * seconds / n for i in range(n)] if n else []
        t0 += seconds
    return out


@dataclass
class _Worker:
    ready_at: float
    slots_free_at: list[float]  # ECS: one per consumer slot; Lambda: one entry, the end of its batch
    retiring: bool = False


class _Simulation:
    """One run of arrivals through a deployment, in steps of ``step`` seconds (see ``simulate``)."""

    def __init__(self, workload: Workload, arrivals: list[float], timing: Timing, res: Result, step: float) -> None:
        self.w, self.arrivals, self.timing, self.res, self.step = workload, arrivals, timing, res, step
        self.latency = workload.payment_latency_s
        self.k = timing.time_scale
        self.waiting: deque[float] = deque()  # arrival times of visible messages (SQS standard is roughly FIFO)
        self.inflight: list[float] = []  # heap of completion times of messages taken by a worker
        self.workers: list[_Worker] = []
        self.next_arrival = 0
        self.spawn_free_at = 0.0
        self.first_message_at: float | None = None
        self.last_nonempty = -math.inf
        # ECS scaling state
        self.period = timing.metric_period_s
        self.next_eval = timing.first_evaluation_s if timing.first_evaluation_s is not None else self.period
        while self.next_eval < 0:  # the evaluation schedule started before the arrival log
            self.next_eval += self.period
        self.samples: deque[tuple[float, int, int]] = deque()  # (t, visible, inflight) for the metric periods
        self.policy: aws.TargetTracking | None = None
        self.steps: list[aws.StepAdjustment] = []
        self.slots = min(workload.worker_concurrency, workload.payment_slots)
        if workload.variant == "ecs":
            self._ecs_setup()

    def _ecs_setup(self) -> None:
        w, k = self.w, self.k
        self.policy = aws.TargetTracking(
            target=w.backlog_per_task_target,
            min_tasks=w.min_tasks,
            max_tasks=w.max_tasks,
            scale_out_cooldown_s=w.scale_out_cooldown_s / k,
            scale_in_cooldown_s=w.scale_in_cooldown_s / k,
        )
        self.steps = [
            aws.StepAdjustment(lo - w.wake_queue_depth, None if up is None else up - w.wake_queue_depth, n)
            for lo, up, n in wake_steps(
                min_tasks=w.min_tasks,
                max_tasks=w.max_tasks,
                target=w.backlog_per_task_target,
                wake_depth=w.wake_queue_depth,
            )
        ]
        for _ in range(w.min_tasks):
            self.workers.append(_Worker(ready_at=0.0, slots_free_at=[0.0] * self.slots))

    def run(self, horizon_s: float) -> Result:
        t = 0.0
        # A mapping's pollers long-poll: each message reaching an empty queue is received at once, a batch of
        # what is visible then (no batching window), so between steps the Lambda side is served per arrival.
        per_arrival = self.w.variant in SQS_MAPPED
        while t <= horizon_s:
            self._complete(t)
            self._arrive(t, per_arrival)
            if self.w.variant == "ecs":
                self._ecs_assign(t)
                self._ecs_evaluate(t)
                self.res.worker_seconds += self.step * len(self.workers)
            else:
                self._lambda_assign(t)
            self._record(t)
            if self._drained(t):
                break
            t += self.step
        return self.res

    def _arrive(self, t: float, per_arrival: bool = False) -> None:
        while self.next_arrival < len(self.arrivals) and self.arrivals[self.next_arrival] <= t:
            at = self.arrivals[self.next_arrival]
            into_empty = not self.waiting
            self.waiting.append(at)
            self.next_arrival += 1
            if self.first_message_at is None:
                self.first_message_at = at if per_arrival else t
            if per_arrival and into_empty:  # a waiting poller receives it now; behind a backlog, the step serves
                self._lambda_assign(max(at, t - self.step))

    def _complete(self, t: float) -> None:
        while self.inflight and self.inflight[0] <= t:
            heapq.heappop(self.inflight)
        self.workers[:] = [w for w in self.workers if not (w.retiring and max(w.slots_free_at) <= t)]

    # ------------------------------------------------------------------ ECS
    def _set_tasks(self, t: float, count: int, why: str) -> None:
        active = [w for w in self.workers if not w.retiring]
        before = len(active)
        if count > before:
            for _ in range(count - before):
                self.workers.append(_Worker(ready_at=t + self.timing.task_start_s, slots_free_at=[0.0] * self.slots))
        else:
            # Tasks holding no payment go first (scale-in protection keeps busy ones).
            for w in sorted(active, key=lambda w: max(w.slots_free_at))[: before - count]:
                w.retiring = True
        if count != before:
            self.res.scaling.append((t, before, count, why))
            if count > before and self.res.first_scale_out_s is None:
                self.res.first_scale_out_s = t

    def _ecs_assign(self, t: float) -> None:
        for w in self.workers:
            if w.retiring or w.ready_at > t:
                continue
            for i, free_at in enumerate(w.slots_free_at):
                if free_at <= t and self.waiting:
                    arrived = self.waiting.popleft()
                    # a consumer's slot pays and records; receive and delete run on loops of their own
                    done = max(t, free_at) + self.latency + self.timing.record_overhead_s
                    w.slots_free_at[i] = done
                    heapq.heappush(self.inflight, done)
                    self.res.waits.append(done - arrived)
        self.samples.append((t, len(self.waiting), len(self.inflight)))

    def _ecs_evaluate(self, t: float) -> None:
        """One scheduled evaluation of the alarms: the wake step from zero tasks, else target tracking."""
        if t < self.next_eval:
            return
        at, lag = self.next_eval, self.timing.metric_lag_s
        window = [s for s in self.samples if at - lag - self.period < s[0] <= at - lag]
        while self.samples and self.samples[0][0] <= at - lag - self.period:
            self.samples.popleft()
        vis = max((s[1] for s in window), default=0)
        inf = max((s[2] for s in window), default=0)
        running = sum(1 for w in self.workers if not w.retiring)
        assert self.policy is not None
        wake = aws.step_scaling_adjustment(vis if running == 0 else 0, self.w.wake_queue_depth, self.steps)
        if running == 0 and wake:
            self._set_tasks(at, min(self.w.max_tasks, running + wake), f"wake: {vis} visible, no task running")
            self.policy.note_scale_out(at)
        else:
            want = self.policy.evaluate(at, backlog=vis + inf, running=running)
            if want is not None and want != running:
                self._set_tasks(at, want, f"target tracking: backlog {vis + inf}")
        self.next_eval += self.period

    # ------------------------------------------------------------------ Lambda
    def _lambda_allowed(self, t: float) -> tuple[int, int]:
        """(concurrency the scaling allows now, records per invoke)."""
        w = self.w
        since = 0.0 if self.first_message_at is None else (t - self.first_message_at) * self.k
        reserved = w.reserved_concurrency or ACCOUNT_CONCURRENCY
        if w.variant == "lambda-sqs":
            return min(reserved, aws.lambda_sqs_concurrency(since, w.max_concurrency)), w.batch_size
        if w.variant == "lambda-sqs-provisioned":
            grown = aws.lambda_sqs_provisioned_concurrency(since, w.min_pollers, w.max_pollers)
            return min(reserved, grown), w.batch_size
        if w.variant == "lambda-mi":  # the mapping's ramp, within what the environments can run
            envs = aws.lambda_mi_environments(since, w.mi_min_envs, w.mi_max_envs)
            return min(aws.lambda_sqs_concurrency(since, w.max_concurrency), envs * w.mi_concurrency), w.batch_size
        return aws.lambda_async_concurrency(since, reserved), 1

    def _environment(self, t: float, idle: list[_Worker]) -> tuple[_Worker, float]:
        """A warm environment if one is idle, else a new one (a cold start): (environment, start time)."""
        if idle:
            return idle.pop(), t
        if self.w.variant == "lambda-mi":  # processes start with their environment, before it takes requests
            env = _Worker(ready_at=t, slots_free_at=[0.0])
            self.workers.append(env)
            return env, t
        if self.timing.serial_cold_starts:
            ready = max(t, self.spawn_free_at) + self.timing.cold_start_s
            self.spawn_free_at = ready
        else:
            ready = t + self.timing.cold_start_s
        env = _Worker(ready_at=ready, slots_free_at=[0.0])
        self.workers.append(env)
        self.res.cold_starts += 1
        return env, ready

    def _lambda_assign(self, t: float) -> None:
        w, res = self.w, self.res
        allowed, take = self._lambda_allowed(t)
        idle = [e for e in self.workers if e.ready_at <= t and e.slots_free_at[0] <= t]
        busy = len(self.workers) - len(idle)
        # Reuse warm environments first, then start new ones within the concurrency allowed.
        while self.waiting and (idle or (len(self.workers) < allowed and busy < allowed)):
            env, start = self._environment(t, idle)
            batch = [self.waiting.popleft() for _ in range(min(take, len(self.waiting)))]
            # The batch's requests queue at the emulator one after another whatever the threads: each adds
            # its time to the invocation, as do the mapping's receive and delete; record n is paid once the
            # requests of n + 1 records are served.
            per_record, overhead = self.timing.record_overhead_s, self.timing.invoke_overhead_s
            for n, arrived in enumerate(batch):
                wave = n // w.payment_slots + 1 if w.batch_paid_concurrently else n + 1
                res.waits.append(start + overhead + (n + 1) * per_record + wave * self.latency - arrived)
            overhead += len(batch) * per_record
            end = (
                start
                + overhead
                + aws.lambda_batch_seconds(
                    records=len(batch),
                    payment_slots=w.payment_slots,
                    payment_latency_s=self.latency,
                    concurrent=w.batch_paid_concurrently or take == 1,
                )
            )
            for _ in batch:  # the mapping deletes the batch when the invocation returns
                heapq.heappush(self.inflight, end)
            env.slots_free_at[0] = end
            res.invocations += 1
            res.worker_seconds += end - t
            busy += 1
            if res.first_scale_out_s is None:
                res.first_scale_out_s = t

    # ------------------------------------------------------------------ bookkeeping
    def _record(self, t: float) -> None:
        if self.w.variant == "ecs":
            active = sum(1 for w in self.workers if not w.retiring)
            full = sum(1 for w in self.workers if not w.retiring and w.ready_at <= t) >= self.w.max_workers
        else:
            active = sum(1 for w in self.workers if w.slots_free_at[0] > t or w.ready_at > t)
            full = self.first_message_at is not None and self._lambda_allowed(t)[0] >= self.w.max_workers
        res = self.res
        if res.full_capacity_s is None and full:
            res.full_capacity_s = t
        res.times.append(t)
        res.visible.append(len(self.waiting))
        res.inflight.append(len(self.inflight))
        res.workers.append(active)
        res.paid.append(len(res.waits) - len(self.inflight))

    def _drained(self, t: float) -> bool:
        if self.waiting or self.inflight or self.next_arrival < len(self.arrivals):
            self.last_nonempty = t
        elif t >= self.res.load_end_s and self.res.drained_at_s is None:
            self.res.drained_at_s = max(self.last_nonempty + self.step, self.res.load_end_s)
            return True
        return False


def simulate(
    workload: Workload,
    arrivals: Sequence[float],
    timing: Timing | None = None,
    *,
    load_end_s: float | None = None,
    horizon_s: float = 6 * 3600,
    step_s: float | None = None,
) -> Result:
    """Run the arrivals through the deployment; times are seconds from the start of the arrival log."""
    timing = timing or Timing.aws()
    ordered = sorted(arrivals)
    latency = workload.payment_latency_s
    step = step_s or max(0.01, min(0.25, latency / 20, timing.metric_period_s / 20))
    res = Result(variant=workload.variant, load_end_s=ordered[-1] if load_end_s is None else load_end_s)
    if not ordered:
        res.drained_at_s = res.load_end_s
        return res
    return _Simulation(workload, ordered, timing, res, step).run(horizon_s)
