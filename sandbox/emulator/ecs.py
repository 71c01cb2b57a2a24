"""The ECS service: tasks as local processes, and Application Auto Scaling acting on its policy."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planner import aws
from sandbox.emulator.process import ROOT, Scale
from sandbox.emulator.queues import Depth, queue_depth

if TYPE_CHECKING:  # the policy is read by the stack layer and handed down
    from sandbox.stack.specs import ScalingPolicy

log = logging.getLogger("sandbox")


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
        depth: Callable[[], Depth] | None = None,
    ) -> None:
        """``depth``: the queue's depth as the rest of the control plane reads it (``queues.SharedDepth``),
        else read here."""
        self.depth = depth
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
        depth = self.depth() if self.depth is not None else queue_depth(self.sqs, self.queue_url)
        visible, inflight = depth.visible, depth.in_flight
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
