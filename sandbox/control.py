"""The local control plane: runs what moto only stores.

Everything is read from the deployed stacks (moto's APIs, which resolved every
reference, or the deployed template where moto keeps no model), never from a
second copy of the configuration.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner import aws
from sandbox.chaos import is_poison
from sandbox.deploy import Deployment

log = logging.getLogger("sandbox")
ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "runtime"


def resources(template: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == rtype]


def resolve(value: Any, deployment: Deployment) -> Any:
    """Resolve the Fn::ImportValue references of the service template against the data stack outputs."""
    if isinstance(value, dict) and "Fn::ImportValue" in value:
        name = value["Fn::ImportValue"].split(":", 1)[1]
        return deployment.output("-data", name)
    return value


@dataclass
class Scale:
    """The sandbox's time scale: k > 1 makes waits k times shorter."""

    k: float

    def seconds(self, real_s: float, minimum: float = 0.05) -> float:
        return max(minimum, real_s / self.k)


@dataclass
class ProcessEnv:
    base: dict[str, str]
    scale: Scale

    def for_runtime(self, env: dict[str, str], *, sandbox_host: bool = False) -> dict[str, str]:
        """A function's or task's environment, with the time scale applied to what it governs.

        ``sandbox_host``: the process is started through a sandbox module (a Lambda
        environment or the API front), so the project root joins ``runtime/`` on the path.
        """
        path = f"{RUNTIME}{os.pathsep}{ROOT}" if sandbox_host else str(RUNTIME)
        out = {**self.base, **env, "PYTHONPATH": path}
        k = self.scale
        if "PAYMENT_LATENCY_MS" in out:
            out["PAYMENT_LATENCY_MS"] = str(int(int(out["PAYMENT_LATENCY_MS"]) / k.k))
        if "QUEUE_VISIBILITY_TIMEOUT_S" in out:
            out["QUEUE_VISIBILITY_TIMEOUT_S"] = str(max(2, int(int(out["QUEUE_VISIBILITY_TIMEOUT_S"]) / k.k)))
        out["SQS_WAIT_TIME_S"] = str(max(1, int(20 / k.k)))
        out.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        out.setdefault("LOG_LEVEL", "WARNING")
        out["WORKER_STATS_INTERVAL_S"] = "3600"
        return out


class PollerGroup:
    """Threads running ``_poll`` until ``close``; the shape every emulated poller shares."""

    name = "poller"

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _poll(self) -> None:
        raise NotImplementedError

    def start(self, count: int) -> None:
        for n in range(count):
            t = threading.Thread(target=self._poll, name=f"{self.name}-{n}", daemon=True)
            t.start()
            self._threads.append(t)

    def close(self) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(timeout=30)


# ----------------------------------------------------------------------------- Lambda
@dataclass
class Environment:
    proc: subprocess.Popen[str]
    init_ms: float
    busy: bool = False


class LambdaPool:
    """Execution environments as local processes, capped at the function's concurrency."""

    def __init__(
        self,
        *,
        handler: str,
        name: str,
        env: dict[str, str],
        timeout_s: float,
        memory_mb: int,
        max_envs: int,
        log_dir: Path,
    ) -> None:
        self.handler, self.name, self.env = handler, name, env
        self.timeout_s, self.memory_mb, self.max_envs = timeout_s, memory_mb, max_envs
        self.log_dir = log_dir
        self._lock = threading.Condition()
        self._spawning = threading.Lock()  # one cold start at a time: 2 cores cannot start 50 interpreters at once
        self._envs: list[Environment] = []
        self.cold_starts: list[float] = []
        self.peak = 0

    def _spawn(self) -> Environment:
        n = len(self.cold_starts)
        stderr = (self.log_dir / f"lambda-{self.name}-{n}.log").open("w")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sandbox.lambda_env",
                self.handler,
                self.name,
                str(int(self.timeout_s * 1000)),
                str(self.memory_mb),
            ],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            bufsize=1,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if not first:
            raise RuntimeError(f"Lambda environment failed to start (see {stderr.name})")
        env = Environment(proc=proc, init_ms=float(json.loads(first)["init_ms"]))
        self.cold_starts.append(env.init_ms)
        return env

    def warm(self, count: int) -> None:
        """Start ``count`` environments before any traffic (as a burst of invokes would)."""
        for _ in range(min(count, self.max_envs) - self.active):
            env = self._spawn()
            with self._lock:
                self._envs.append(env)
                self._lock.notify_all()

    def acquire(self, stop: threading.Event) -> Environment | None:
        with self._lock:
            while not stop.is_set():
                idle = [e for e in self._envs if e is not None and not e.busy]
                if idle:
                    env = idle[0]
                    env.busy = True
                    break
                if len(self._envs) < self.max_envs:
                    placeholder = None
                    self._envs.append(placeholder)  # type: ignore[arg-type]
                    self._lock.release()
                    try:
                        with self._spawning:
                            env = self._spawn()
                    finally:
                        self._lock.acquire()
                        self._envs.remove(placeholder)  # type: ignore[arg-type]
                    env.busy = True
                    self._envs.append(env)
                    break
                self._lock.wait(0.2)
            else:
                return None
            self.peak = max(self.peak, sum(1 for e in self._envs if e is not None and e.busy))
            return env

    def invoke(self, env: Environment, event: dict[str, Any]) -> dict[str, Any]:
        assert env.proc.stdin is not None and env.proc.stdout is not None
        result: dict[str, Any] = {"ok": False, "error": "timeout"}
        done = threading.Event()

        def read() -> None:
            nonlocal result
            line = env.proc.stdout.readline()  # type: ignore[union-attr]
            result = json.loads(line) if line else {"ok": False, "error": "environment died"}
            done.set()

        try:
            env.proc.stdin.write(json.dumps(event) + "\n")
            env.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._discard(env)
            return {"ok": False, "error": "environment died"}
        threading.Thread(target=read, daemon=True).start()
        if not done.wait(self.timeout_s):
            env.proc.kill()  # a timed-out environment is discarded, as Lambda does
            self._discard(env)
            return {"ok": False, "error": "Task timed out"}
        if result.get("error") == "environment died":
            self._discard(env)  # Lambda replaces a crashed environment with a fresh one on the next invoke
        return result

    def _discard(self, env: Environment) -> None:
        with self._lock:
            if env in self._envs:
                self._envs.remove(env)
            self._lock.notify_all()

    def release(self, env: Environment) -> None:
        with self._lock:
            env.busy = False
            self._lock.notify_all()

    def kill(self, count: int) -> int:
        """kill -9 up to ``count`` busy environments (chaos); the pool replaces them on demand."""
        with self._lock:
            victims = [e for e in self._envs if e is not None and e.busy][:count]
        for e in victims:
            e.proc.kill()
        return len(victims)

    @property
    def active(self) -> int:
        with self._lock:
            return sum(1 for e in self._envs if e is not None)

    @property
    def busy(self) -> int:
        with self._lock:
            return sum(1 for e in self._envs if e is not None and e.busy)

    def close(self) -> None:
        with self._lock:
            envs = [e for e in self._envs if e is not None]
            self._envs.clear()
        for e in envs:
            try:
                if e.proc.stdin:
                    e.proc.stdin.close()
                e.proc.wait(timeout=5)
            except Exception:
                e.proc.kill()


class SqsEventSource(PollerGroup):
    """The event source mapping: batches from the queue, partial batch failures, max concurrency."""

    name = "esm"

    def __init__(
        self,
        *,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        pool: LambdaPool,
        batch_size: int,
        visibility_s: int,
        wait_s: int,
        scale: Scale,
        max_concurrency: int,
        poll_idle: bool = False,
    ) -> None:
        """``poll_idle``: poll without holding an environment (see ``_poll_then_invoke``)."""
        self.sqs, self.queue_url, self.queue_arn, self.pool = sqs, queue_url, queue_arn, pool
        self.poll_idle = poll_idle
        self.batch_size, self.visibility_s, self.wait_s = batch_size, visibility_s, wait_s
        self.scale, self.max_concurrency = scale, max_concurrency
        self.first_message_at: float | None = None
        self._next_index = 0
        self._index_lock = threading.Lock()
        super().__init__()

    def allowed(self) -> int:
        """Concurrent batches the mapping runs now: 5, then +300 a minute of real time (``planner.aws``)."""
        if self.first_message_at is None:
            return aws.LAMBDA_SQS_INITIAL_CONCURRENCY
        real_s = (time.monotonic() - self.first_message_at) * self.scale.k
        return aws.lambda_sqs_concurrency(real_s, self.max_concurrency)

    def _poll(self) -> None:
        with self._index_lock:
            index, self._next_index = self._next_index, self._next_index + 1
        while not self.stop.is_set():
            if index >= self.allowed():
                self.stop.wait(0.05)
                continue
            if self.poll_idle:
                self._poll_then_invoke()
                continue
            env = self.pool.acquire(self.stop)
            if env is None:
                return
            try:
                msgs = self._receive()
                if msgs:
                    self._invoke(env, msgs)
            except Exception:
                log.exception("event source poll failed")
                time.sleep(0.5)
            finally:
                self.pool.release(env)

    def _poll_then_invoke(self) -> None:
        """Receive first, take an environment only for a batch: a mapping on a queue that is usually empty
        (lambdaTrigger=sns's drain of the orders queue) holds no environment while it waits, as on AWS."""
        try:
            msgs = self._receive()
        except Exception:
            log.exception("event source poll failed")
            time.sleep(0.5)
            return
        if not msgs:
            return
        env = self.pool.acquire(self.stop)
        if env is None:
            return  # stopping: the batch returns to the queue after its visibility timeout
        try:
            self._invoke(env, msgs)
        except Exception:
            log.exception("event source invoke failed")
        finally:
            self.pool.release(env)

    def _receive(self) -> list[dict[str, Any]]:
        msgs: list[dict[str, Any]] = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_s,
            VisibilityTimeout=self.visibility_s,
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if msgs and self.first_message_at is None:
            self.first_message_at = time.monotonic()
        return msgs

    def _invoke(self, env: Environment, msgs: list[dict[str, Any]]) -> None:
        event = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m.get("MD5OfBody", ""),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": "us-east-1",
                }
                for m in msgs
            ]
        }
        out = self.pool.invoke(env, event)
        failed: set[str] = set()
        if not out.get("ok"):
            failed = {m["MessageId"] for m in msgs}  # whole batch retried after the visibility timeout
        else:
            failed = {f["itemIdentifier"] for f in (out.get("result") or {}).get("batchItemFailures", [])}
        done = [m for m in msgs if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
                ],
            )


class SnsAsyncInvoker(PollerGroup):
    """SNS -> Lambda async invoke: retries with backoff, max event age, then the on-failure destination."""

    name = "async"

    def __init__(
        self, *, sqs: Any, tap_url: str, pool: LambdaPool, retries: int, max_age_s: float, dlq_url: str, scale: Scale
    ) -> None:
        self.sqs, self.tap_url, self.pool, self.retries = sqs, tap_url, pool, retries
        self.max_age_s, self.dlq_url, self.scale = max_age_s, dlq_url, scale
        self._retries: list[tuple[float, int, str, float, int]] = []  # (due, order, body, received, attempt)
        self._retry_lock = threading.Lock()
        self._order = itertools.count()
        # Chaos instrumentation: when each poison event was first invoked and when it was dead-lettered.
        self.poison_first_attempt: dict[int, float] = {}
        self.poison_dead_lettered: dict[int, float] = {}
        super().__init__()

    def _event(self, body: str) -> dict[str, Any]:
        """The SNS event Lambda invokes the function with, from what SNS put on the async-invoke queue."""
        note = json.loads(body)
        return {
            "Records": [
                {
                    "EventSource": "aws:sns",
                    "EventVersion": "1.0",
                    "EventSubscriptionArn": note["EventSubscriptionArn"],
                    "Sns": {k: note[k] for k in ("Type", "MessageId", "TopicArn", "Message", "MessageAttributes")},
                }
            ]
        }

    @property
    def pending(self) -> int:
        """Events waiting for a retry (Lambda's internal async queue holds them meanwhile)."""
        with self._retry_lock:
            return len(self._retries)

    def _attempt(self, body: str, received_at: float, attempt: int) -> None:
        """One invoke; a failure is retried later (~1 min, then ~2 min, scaled) without holding a poller."""
        if time.monotonic() - received_at > self.max_age_s:
            self._dead_letter(body, attempt, "event expired (max event age)")
            return
        if attempt == 0 and is_poison(body):
            self.poison_first_attempt.setdefault(hash(body), time.monotonic())
        env = self.pool.acquire(self.stop)
        if env is None:
            return
        try:
            out = self.pool.invoke(env, self._event(body))
        finally:
            self.pool.release(env)
        if out.get("ok"):
            return
        if attempt < self.retries:
            due = time.monotonic() + self.scale.seconds(60 * (attempt + 1))
            with self._retry_lock:
                heapq.heappush(self._retries, (due, next(self._order), body, received_at, attempt + 1))
            return
        self._dead_letter(body, attempt + 1, str(out.get("error", "")))

    def _dead_letter(self, body: str, attempts: int, error: str) -> None:
        if is_poison(body):
            self.poison_dead_lettered[hash(body)] = time.monotonic()
        record = {
            "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": attempts},
            "requestPayload": self._event(body),
            "responsePayload": {"errorMessage": error},
        }
        self.sqs.send_message(QueueUrl=self.dlq_url, MessageBody=json.dumps(record))

    def _due_retry(self) -> tuple[str, float, int] | None:
        with self._retry_lock:
            if self._retries and self._retries[0][0] <= time.monotonic():
                _, _, body, received_at, attempt = heapq.heappop(self._retries)
                return body, received_at, attempt
        return None

    def _poll(self) -> None:
        while not self.stop.is_set():
            try:
                retry = self._due_retry()
                if retry is not None:
                    self._attempt(*retry)
                    continue
                msgs = self.sqs.receive_message(
                    QueueUrl=self.tap_url, MaxNumberOfMessages=1, WaitTimeSeconds=1, VisibilityTimeout=3600
                ).get("Messages", [])
                for m in msgs:
                    # Lambda's async queue owns the event once accepted: take it off the tap queue now.
                    self.sqs.delete_message(QueueUrl=self.tap_url, ReceiptHandle=m["ReceiptHandle"])
                    self._attempt(m["Body"], time.monotonic(), 0)
            except Exception:  # an invoker never dies with an environment or a failed call
                log.exception("async invoke poll failed")
                self.stop.wait(0.5)


# ----------------------------------------------------------------------------- ECS
@dataclass
class ScalingPolicy:
    """The deployed scaling policy's numbers, read from the service template."""

    min_tasks: int
    max_tasks: int
    target: float
    scale_out_cooldown_s: float
    scale_in_cooldown_s: float
    wake_depth: int
    wake_steps: list[tuple[float, float | None, int]]  # (lower, upper) relative to wake_depth, tasks to add

    @classmethod
    def from_template(cls, template: dict[str, Any]) -> ScalingPolicy:
        [target] = resources(template, "AWS::ApplicationAutoScaling::ScalableTarget")
        policies = {p["PolicyType"]: p for p in resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy")}
        tt = policies["TargetTrackingScaling"]["TargetTrackingScalingPolicyConfiguration"]
        step = policies["StepScaling"]["StepScalingPolicyConfiguration"]
        assert step["AdjustmentType"] == "ChangeInCapacity", step
        [wake] = [
            a
            for a in resources(template, "AWS::CloudWatch::Alarm")
            if any("FILL(running, 0) == 0" in m.get("Expression", "") for m in a.get("Metrics", []))
        ]
        assert wake["ComparisonOperator"] == "GreaterThanOrEqualToThreshold", wake
        return cls(
            min_tasks=int(target["MinCapacity"]),
            max_tasks=int(target["MaxCapacity"]),
            target=float(tt["TargetValue"]),
            scale_out_cooldown_s=float(tt.get("ScaleOutCooldown", 0)),
            scale_in_cooldown_s=float(tt.get("ScaleInCooldown", 0)),
            wake_depth=int(wake["Threshold"]),
            wake_steps=[
                (
                    float(a.get("MetricIntervalLowerBound", float("-inf"))),
                    float(a["MetricIntervalUpperBound"]) if "MetricIntervalUpperBound" in a else None,
                    int(a["ScalingAdjustment"]),
                )
                for a in step["StepAdjustments"]
            ],
        )

    # The context key ops set for each deployed number (stacks/config.py), for the control plane's log.
    KEYS = {
        "target": "backlogPerTaskTarget",
        "min_tasks": "minTasks",
        "max_tasks": "maxTasks",
        "scale_out_cooldown_s": "scaleOutCooldownSeconds",
        "scale_in_cooldown_s": "scaleInCooldownSeconds",
        "wake_depth": "wakeQueueDepth",
    }

    def changes(self, new: ScalingPolicy) -> list[str]:
        """What a deploy changed, named by context key: ``backlogPerTaskTarget 100 -> 20``."""
        return [
            f"{key} {getattr(self, field):g} -> {getattr(new, field):g}"
            for field, key in self.KEYS.items()
            if getattr(self, field) != getattr(new, field)
        ]

    def steps(self) -> list[aws.StepAdjustment]:
        return [aws.StepAdjustment(lo, up, n) for lo, up, n in self.wake_steps]

    def target_tracking(self, scale: Scale) -> aws.TargetTracking:
        """Application Auto Scaling's target tracking for this policy, with the sandbox's time scale."""
        return aws.TargetTracking(
            target=self.target,
            min_tasks=self.min_tasks,
            max_tasks=self.max_tasks,
            scale_out_cooldown_s=self.scale_out_cooldown_s / scale.k,
            scale_in_cooldown_s=self.scale_in_cooldown_s / scale.k,
        )


class EcsService:
    """Tasks as local processes of the real worker entry point, scaled by the deployed policy."""

    def __init__(
        self,
        *,
        env: dict[str, str],
        command: list[str],
        stop_timeout_s: float,
        policy: ScalingPolicy,
        sqs: Any,
        queue_url: str,
        scale: Scale,
        log_dir: Path,
    ) -> None:
        self.env, self.command, self.stop_timeout_s = env, command, stop_timeout_s
        self.policy, self.sqs, self.queue_url, self.scale, self.log_dir = policy, sqs, queue_url, scale, log_dir
        self.tasks: list[subprocess.Popen[bytes]] = []
        self.stopping: list[subprocess.Popen[bytes]] = []
        # The autoscaler, the scheduler and the samplers touch the task lists from their own threads:
        # an unguarded filter in running() could drop a task started meanwhile, leaving it orphaned.
        self._tasks_lock = threading.RLock()
        self._closed = False
        self.stop = threading.Event()
        self.desired = policy.min_tasks
        self.peak = 0
        self.activities: list[tuple[float, int, int, str]] = []
        self._tracking = policy.target_tracking(scale)
        self._steps = policy.steps()
        self._period_max = (0, 0)
        self.started_at = 0.0  # when the evaluation schedule began (monotonic)
        self.replaced = 0  # tasks started to replace ones that stopped on their own
        self.peak_backlog_seen = 0
        self._thread: threading.Thread | None = None
        self._started = 0

    def update_policy(self, policy: ScalingPolicy) -> list[str]:
        """Adopt a redeployed scaling policy (PutScalingPolicy recreates its alarms: the datapoints start over)."""
        changes = self.policy.changes(policy)
        if not changes and policy.wake_steps == self.policy.wake_steps:
            return []
        old = self._tracking
        self.policy, self._steps = policy, policy.steps()
        self._tracking = policy.target_tracking(self.scale)
        self._tracking.note_scale_out(old.last_scale_out)  # cooldowns belong to the scalable target
        self._tracking.note_scale_in(old.last_scale_in)
        clamped = min(max(self.desired, policy.min_tasks), policy.max_tasks)
        if clamped != self.desired:  # the scalable target's new bounds apply at once
            self._set(clamped, f"scalable target: tasks {policy.min_tasks}..{policy.max_tasks}")
        return changes

    def redeploy(self, env: dict[str, str], command: list[str], stop_timeout_s: float) -> bool:
        """A new task definition: running tasks get SIGTERM and the scheduler starts new ones (a rolling update)."""
        if (env, command, stop_timeout_s) == (self.env, self.command, self.stop_timeout_s):
            return False
        with self._tasks_lock:
            self.env, self.command, self.stop_timeout_s = env, command, stop_timeout_s
            while self.tasks:
                self._stop_task()
        self.replace_stopped()
        return True

    def _start_task(self) -> None:
        with self._tasks_lock:
            if self._closed:
                return  # the service is being deleted: nothing starts after close()
            self._start_task_locked()

    def _start_task_locked(self) -> None:
        out = (self.log_dir / f"ecs-task-{self._started}.log").open("w")
        self._started += 1
        cmd = [sys.executable if c == "python" else c for c in self.command]
        self.tasks.append(subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT))

    def _stop_task(self) -> None:
        with self._tasks_lock:
            task = self.tasks.pop()
            self.stopping.append(task)
        task.send_signal(signal.SIGTERM)  # the worker finishes or releases what it holds
        timer = threading.Timer(self.stop_timeout_s, self._kill_if_running, args=(task,))
        timer.daemon = True
        timer.start()

    @staticmethod
    def _kill_if_running(task: subprocess.Popen[bytes]) -> None:
        if task.poll() is None:
            task.kill()  # ECS sends SIGKILL after the container's stop timeout

    def kill(self, count: int) -> int:
        """kill -9 up to ``count`` running tasks (chaos); the service scheduler replaces them."""
        with self._tasks_lock:
            victims = [t for t in self.tasks if t.poll() is None][:count]
        for t in victims:
            t.kill()
        return len(victims)

    def replace_stopped(self) -> int:
        """What the ECS service scheduler does: start tasks until the running count is the desired count."""
        started = 0
        while not self.stop.is_set() and self.running() < self.desired:
            self._start_task()
            started += 1
        self.replaced += started
        return started

    def running(self) -> int:
        with self._tasks_lock:
            self.tasks = [t for t in self.tasks if t.poll() is None]
            self.stopping = [t for t in self.stopping if t.poll() is None]
            return len(self.tasks)

    def _set(self, count: int, reason: str) -> None:
        now = time.monotonic()
        before = self.running()
        while self.running() < count:
            self._start_task()
        while self.running() > count:
            self._stop_task()
        self.desired = count
        self.peak = max(self.peak, count)
        self.activities.append((now, before, count, reason))

    def observe(self) -> tuple[int, int]:
        """One datapoint of the queue metrics; the period keeps their Maximum, as the policy's statistic does."""
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        visible, inflight = (
            int(attrs["ApproximateNumberOfMessages"]),
            int(attrs["ApproximateNumberOfMessagesNotVisible"]),
        )
        self._period_max = (max(self._period_max[0], visible), max(self._period_max[1], inflight))
        self.peak_backlog_seen = max(self.peak_backlog_seen, visible + inflight)
        return visible, inflight

    def evaluate(self, at: float | None = None) -> None:
        """One evaluation of the deployed policies, as ``planner.aws`` says AWS evaluates them.

        ``at`` is the scheduled time (cooldowns count in periods, not jitter). The wake step's alarm
        reads visible messages while no task runs; target tracking reads (visible + in flight) per task.
        """
        self.observe()
        (visible, inflight), self._period_max = self._period_max, (0, 0)
        running, now, p = self.running(), (time.monotonic() if at is None else at), self.policy
        wake = aws.step_scaling_adjustment(visible if running == 0 else 0, p.wake_depth, self._steps)
        if running == 0 and wake:
            self._set(min(p.max_tasks, running + wake), f"wake: {visible} visible, no task running")
            self._tracking.note_scale_out(now)
            return
        want = self._tracking.evaluate(now, backlog=visible + inflight, running=running)
        if want is not None and want != running:
            self._set(want, f"target tracking: backlog {visible + inflight} / target {p.target:g}")

    @property
    def period(self) -> float:
        return max(0.5, aws.METRIC_PERIOD_S / self.scale.k)  # CloudWatch's 1-minute metric period, scaled

    def _loop(self) -> None:
        period = self.period
        next_evaluation = self.started_at + period
        while not self.stop.wait(min(0.5, period)):
            try:
                self.replace_stopped()
                self.observe()
                if time.monotonic() >= next_evaluation:
                    self.evaluate(at=next_evaluation)
                    next_evaluation += period
            except Exception:
                log.exception("autoscaler evaluation failed")

    def start(self) -> None:
        self.started_at = time.monotonic()
        if self.policy.min_tasks:
            self._set(self.policy.min_tasks, "minTasks")
        self._thread = threading.Thread(target=self._loop, name="autoscaler", daemon=True)
        self._thread.start()
        self.evaluate()

    def close(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._tasks_lock:
            self._closed = True
            while self.tasks:
                self._stop_task()
            stopping = list(self.stopping)
        deadline = time.monotonic() + self.stop_timeout_s
        for t in stopping:
            try:
                t.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                t.kill()  # ECS sends SIGKILL after the stop timeout


def task_definition(ecs: Any, deployment: Deployment) -> tuple[dict[str, str], list[str], float]:
    cluster = deployment.output("-service", "ClusterName")
    service = deployment.output("-service", "WorkerServiceName")
    [svc] = ecs.describe_services(cluster=cluster, services=[service])["services"]
    td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
    [container] = td["containerDefinitions"]
    env = {e["name"]: e["value"] for e in container.get("environment", [])}
    return env, container["command"], float(container.get("stopTimeout", 30))
