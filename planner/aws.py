"""What AWS does with this project's scaling configuration: one small function per behaviour, each with its source.

These are the single implementation of "what AWS does": the planner's
simulation calls them, and so does the local sandbox's control plane (with
its time scale), so a run in the sandbox and a prediction for AWS follow the
same rules. Pure Python, no AWS calls. Figures read in Nov 2026; re-check the
sources before relying on them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# -- CloudWatch ---------------------------------------------------------------------------------
METRIC_PERIOD_S = 60.0
"""SQS publishes its metrics to CloudWatch at one-minute intervals; the alarms here use 1-minute periods.
Source: Amazon SQS Developer Guide, "Available CloudWatch metrics for Amazon SQS"."""

SQS_METRIC_LAG_S = 60.0
"""How late an SQS datapoint reaches an alarm on AWS (the queue's metrics are pushed each minute and the
alarm evaluates the last complete period). 0 in the sandbox, which reads the queue directly."""

TARGET_TRACKING_SCALE_OUT_DATAPOINTS = 3
TARGET_TRACKING_SCALE_IN_DATAPOINTS = 15
TARGET_TRACKING_SCALE_IN_RATIO = 0.9
"""Application Auto Scaling creates the target-tracking alarms itself: the high alarm wants 3 of 3 one-minute
datapoints above the target, the low alarm 15 of 15 below 90% of it. Source: Application Auto Scaling User
Guide, "Target tracking scaling policies" (how target tracking works; the alarms it creates)."""

# -- Fargate ------------------------------------------------------------------------------------
FARGATE_TASK_START_S = 60.0
"""From RunTask to a worker consuming: image pull, ENI attach, container start. AWS documents no figure; the
AWS containers blog "Analyze Amazon ECS/Fargate task launch times" reports tens of seconds to about a minute,
growing with image size. Override with the value measured for your image."""

# -- Lambda -------------------------------------------------------------------------------------
LAMBDA_SQS_INITIAL_CONCURRENCY = 5
LAMBDA_SQS_SCALE_PER_MINUTE = 300
LAMBDA_SQS_MAX_CONCURRENCY = 1000
"""An SQS event source mapping starts with 5 concurrent batches and adds up to 300 a minute, to at most
``maximumConcurrency`` (2-1000). Source: AWS Lambda Developer Guide, "Configuring scaling behavior for SQS
event source mappings" (scaling and processing)."""

LAMBDA_SQS_INVOKES_PER_POLLER = 10
LAMBDA_SQS_PROVISIONED_SCALE_PER_MINUTE = 1000
LAMBDA_SQS_PROVISIONED_MAX_CONCURRENCY = 20_000
"""Provisioned mode (GA Nov 2025): ``MinimumPollers`` (2-200) are always ready, each driving up to 10
concurrent invokes; Lambda adds up to 1,000 concurrency a minute, to ``MaximumPollers`` (2-2,000 in
CloudFormation) x 10, at most 20,000; it cannot be combined with ``maximumConcurrency``. Sources: AWS Lambda
Developer Guide, "Configuring scaling behavior for SQS event source mappings" ("each event poller can handle
... up to 10 concurrent invokes"; "quickly adding up to 1,000 concurrency per minute"; "You cannot use the
maximum concurrency setting and provisioned mode at the same time"); AWS CloudFormation Template Reference,
``AWS::Lambda::EventSourceMapping ProvisionedPollerConfig``; AWS News Blog, "AWS Lambda enhances SQS processing
with new provisioned mode" ("up to 20,000 concurrency"). Not confirmed: how fast pollers are added above the
minimum when the queue fills (the docs give the concurrency rate only), so the model grows concurrency at
1,000 a minute from the minimum's."""

LAMBDA_MI_MIN_ENVIRONMENTS = 3
LAMBDA_MI_DOUBLING_S = 300.0
LAMBDA_MI_PYTHON_CONCURRENCY_PER_VCPU = 16
"""Lambda Managed Instances (Dec 2025): functions on EC2 instances of a capacity provider. Python runs one
process per concurrent request, 16 per vCPU by default (at most 64); Lambda starts 3 execution environments
across AZs before the version is ACTIVE and scales asynchronously on CPU and concurrency saturation: "If your
traffic more than doubles within 5 minutes, you may see throttles". Sources: AWS Lambda Developer Guide,
"Lambda Managed Instances" (scaling; the Python runtime). The model lets capacity double every 5 minutes from
the 3 environments and no faster. Not confirmed: how long an instance takes to launch (no AWS figure), so new
environments are counted ready when the rule allows them."""

LAMBDA_SCALE_PER_10S = 1000
"""Each function can add 1,000 execution environments every 10 seconds, up to its reserved (or the account's)
concurrency; async invokes (SNS) scale this way. Source: AWS Lambda Developer Guide, "Lambda scaling behavior"."""

LAMBDA_COLD_START_S = 0.5
"""Init of this runtime's worker (Python, Powertools, boto3, lazy clients): `make bench`'s cold-start bench
measures ~0.3-0.6 s for a fresh interpreter importing the handler and making its first calls."""


@dataclass(frozen=True)
class StepAdjustment:
    """One step of a step-scaling policy, bounds relative to the alarm threshold (None = unbounded)."""

    lower: float | None
    upper: float | None
    adjustment: int


def step_scaling_adjustment(metric: float, threshold: float, steps: Sequence[StepAdjustment]) -> int | None:
    """The adjustment a step policy applies when its alarm (metric >= threshold) fires, else None.

    This project's wake step is ChangeInCapacity (it adds, so it never lowers a busy service's count).
    Source: Application Auto Scaling User Guide, "Step scaling policies" (step adjustments are relative to
    the alarm threshold; lower bound inclusive, upper bound exclusive; ChangeInCapacity adds to the current
    capacity, within the scalable target's min and max).
    """
    if metric < threshold:
        return None
    breach = metric - threshold
    for step in steps:
        lower = -math.inf if step.lower is None else step.lower
        upper = math.inf if step.upper is None else step.upper
        if lower <= breach < upper:
            return step.adjustment
    return None


def target_tracking_capacity(backlog: float, target: float, min_tasks: int, max_tasks: int) -> int:
    """The capacity target tracking aims for on a backlog-per-task metric: ceil(backlog / target), clamped.

    The metric is backlog / running tasks, so the capacity that brings it to the target is
    running x metric / target = backlog / target. Source: Application Auto Scaling User Guide,
    "Target tracking scaling policies"; the SQS backlog-per-instance pattern in the Amazon EC2
    Auto Scaling User Guide, "Scaling policy based on Amazon SQS".
    """
    want = math.ceil(backlog / target) if backlog > 0 else 0
    return max(min_tasks, min(max_tasks, want))


@dataclass
class TargetTracking:
    """Target tracking as Application Auto Scaling evaluates it: its own alarms, datapoints and cooldowns.

    ``evaluate`` is called once per metric period with that period's datapoint (backlog per task and the
    backlog behind it) and returns the new desired count, or None. Scale-out needs the last 3 datapoints
    above the target and respects the scale-out cooldown; scale-in needs 15 below 90% of the target and
    waits out both cooldowns. Source: Application Auto Scaling User Guide, "Target tracking scaling
    policies" and "Define cooldown periods".
    """

    target: float
    min_tasks: int
    max_tasks: int
    scale_out_cooldown_s: float
    scale_in_cooldown_s: float
    out_datapoints: int = TARGET_TRACKING_SCALE_OUT_DATAPOINTS
    in_datapoints: int = TARGET_TRACKING_SCALE_IN_DATAPOINTS

    def __post_init__(self) -> None:
        self._metric: list[float] = []
        self._last_out = -math.inf
        self._last_in = -math.inf

    def note_scale_out(self, now: float) -> None:
        """Another policy (the wake step) scaled out: the cooldown counts from it too."""
        self._last_out = max(self._last_out, now)

    def note_scale_in(self, now: float) -> None:
        self._last_in = max(self._last_in, now)

    @property
    def last_scale_out(self) -> float:
        return self._last_out

    @property
    def last_scale_in(self) -> float:
        return self._last_in

    def evaluate(self, now: float, *, backlog: float, running: int) -> int | None:
        metric = backlog / running if running else (math.inf if backlog else 0.0)
        self._metric.append(metric)
        del self._metric[: -max(self.out_datapoints, self.in_datapoints)]
        want = target_tracking_capacity(backlog, self.target, self.min_tasks, self.max_tasks)
        recent_out = self._metric[-self.out_datapoints :]
        if (
            want > running
            and len(recent_out) == self.out_datapoints
            and all(m > self.target for m in recent_out)
            and now - self._last_out >= self.scale_out_cooldown_s
        ):
            self._last_out = now
            return want
        recent_in = self._metric[-self.in_datapoints :]
        if (
            want < running
            and len(recent_in) == self.in_datapoints
            and all(m < TARGET_TRACKING_SCALE_IN_RATIO * self.target for m in recent_in)
            and now - max(self._last_in, self._last_out) >= self.scale_in_cooldown_s
        ):
            self._last_in = now
            return want
        return None


def lambda_sqs_concurrency(
    seconds_since_messages: float, max_concurrency: int, per_minute: float = LAMBDA_SQS_SCALE_PER_MINUTE
) -> int:
    """Concurrent batches an SQS event source mapping runs this long after messages appeared.

    Starts at 5 and adds up to 300 per minute, to at most ``max_concurrency``. Source: AWS Lambda Developer
    Guide, "Configuring scaling behavior for SQS event source mappings". ``per_minute``: 60 before Nov 2023
    (AWS Compute Blog, "Introducing faster polling scale-up for AWS Lambda functions configured with Amazon
    SQS"), for experiments published before then.
    """
    grown = LAMBDA_SQS_INITIAL_CONCURRENCY + per_minute * max(0.0, seconds_since_messages) / 60.0
    return max(0, min(max_concurrency, LAMBDA_SQS_MAX_CONCURRENCY, math.floor(grown)))


def lambda_sqs_provisioned_concurrency(seconds_since_messages: float, min_pollers: int, max_pollers: int) -> int:
    """Concurrent batches a provisioned-mode SQS mapping runs this long after messages appeared.

    ``min_pollers`` x 10 at once, then up to +1,000 a minute, to ``max_pollers`` x 10 (at most 20,000).
    Source: AWS Lambda Developer Guide, "Configuring scaling behavior for SQS event source mappings".
    """
    ready = min_pollers * LAMBDA_SQS_INVOKES_PER_POLLER
    grown = ready + LAMBDA_SQS_PROVISIONED_SCALE_PER_MINUTE * max(0.0, seconds_since_messages) / 60.0
    return max(0, min(lambda_sqs_provisioned_ceiling(max_pollers), math.floor(grown)))


def lambda_sqs_provisioned_ceiling(max_pollers: int) -> int:
    """The most concurrent batches ``max_pollers`` provisioned pollers drive: 10 each, at most 20,000."""
    return min(max_pollers * LAMBDA_SQS_INVOKES_PER_POLLER, LAMBDA_SQS_PROVISIONED_MAX_CONCURRENCY)


def lambda_mi_environments(seconds_since_messages: float, min_envs: int, max_envs: int) -> int:
    """Execution environments a Managed Instances function has this long into a burst: ``min_envs`` at once,
    doubling at most every 5 minutes, to ``max_envs``. Source: AWS Lambda Developer Guide, "Lambda Managed
    Instances scaling"."""
    grown = min_envs * 2 ** (max(0.0, seconds_since_messages) / LAMBDA_MI_DOUBLING_S)
    return max(0, min(max_envs, math.floor(grown)))


def lambda_async_concurrency(seconds_since_burst: float, reserved_concurrency: int) -> int:
    """Environments available to async invokes (SNS): +1,000 per 10 s up to the reserved concurrency.

    Source: AWS Lambda Developer Guide, "Lambda scaling behavior" (concurrency scaling rate).
    """
    grown = LAMBDA_SCALE_PER_10S * (1 + math.floor(max(0.0, seconds_since_burst) / 10.0))
    return max(0, min(reserved_concurrency, grown))


def ecs_task_capacity_per_s(
    *, worker_concurrency: int, payment_slots: int, payment_latency_s: float, per_record_s: float = 0.0
) -> float:
    """Payments per second one ECS task sustains: its consumers share one payment client's slots, each slot
    spending ``per_record_s`` on the order's own requests besides the payment."""
    return min(worker_concurrency, payment_slots) / (payment_latency_s + per_record_s)


def lambda_batch_seconds(*, records: int, payment_slots: int, payment_latency_s: float, concurrent: bool) -> float:
    """How long one invocation pays a batch: ceil(n / slots) waves when paid concurrently, n payments if not."""
    if records <= 0:
        return 0.0
    waves = math.ceil(records / payment_slots) if concurrent else records
    return waves * payment_latency_s


def lambda_env_capacity_per_s(
    *,
    batch_size: int,
    payment_slots: int,
    payment_latency_s: float,
    concurrent: bool = True,
    per_record_s: float = 0.0,
    per_invoke_s: float = 0.0,
) -> float:
    """Payments per second one Lambda environment sustains on full batches (the runtime pays a batch
    concurrently), each invoke also spending ``per_invoke_s`` and each record ``per_record_s`` on requests."""
    paying = lambda_batch_seconds(
        records=batch_size, payment_slots=payment_slots, payment_latency_s=payment_latency_s, concurrent=concurrent
    )
    return batch_size / (paying + per_invoke_s + batch_size * per_record_s)
