"""EventBridge Scheduler for the sandbox: the service template's schedules, fired on time (time-scaled).

moto accepts ``AWS::Scheduler::Schedule`` and never fires it. Here each ENABLED schedule with a
``rate(...)`` expression and a Lambda target invokes that function (its deployed handler, in an execution
environment of its own) every period, first one period after the start, as Scheduler does; with
``MaximumRetryAttempts`` 0 a failed invoke is not retried. ``cron(...)`` and ``at(...)`` are not fired
(the stacks use none); each schedule found is reported either way.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("sandbox.emulator")

_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> float | None:
    """The period of a ``rate(...)`` expression in seconds; None for any other kind."""
    m = _RATE.fullmatch(expression.strip())
    if m is None:
        return None
    return int(m.group(1)) * _UNIT_S[m.group(2).rstrip("s")]


@dataclass(frozen=True)
class Schedule:
    logical_id: str
    expression: str
    target_logical_id: str | None  # the Lambda function the target's Arn points at (Fn::GetAtt)
    enabled: bool
    payload: str


def schedules(template: dict[str, Any]) -> list[Schedule]:
    out = []
    for logical_id, r in template.get("Resources", {}).items():
        if r.get("Type") != "AWS::Scheduler::Schedule":
            continue
        props = r["Properties"]
        arn = props.get("Target", {}).get("Arn")
        target = arn["Fn::GetAtt"][0] if isinstance(arn, dict) and "Fn::GetAtt" in arn else None
        out.append(
            Schedule(
                logical_id=logical_id,
                expression=str(props.get("ScheduleExpression", "")),
                target_logical_id=target,
                enabled=props.get("State", "ENABLED") == "ENABLED",
                payload=str(props.get("Target", {}).get("Input") or "{}"),
            )
        )
    return out


@dataclass
class Firing:
    """One schedule's runs: when it fired and what each invoke returned (or the error)."""

    schedule: Schedule
    period_s: float
    results: list[dict[str, Any]] = field(default_factory=list)


class Scheduler:
    """Fires schedules into ``invoke(function_logical_id, payload) -> result`` every period / ``k``."""

    def __init__(self, found: list[Schedule], invoke: Any, *, k: float) -> None:
        self.firings: list[Firing] = []
        self.skipped: list[str] = []
        for s in found:
            period = rate_seconds(s.expression)
            if not s.enabled or period is None or s.target_logical_id is None:
                self.skipped.append(f"{s.logical_id} ({s.expression}{'' if s.enabled else ', disabled'})")
                continue
            self.firings.append(Firing(s, period / k))
        self._invoke = invoke
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(f,), name=f"schedule-{f.schedule.logical_id}", daemon=True)
            for f in self.firings
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def _run(self, firing: Firing) -> None:
        while not self._stop.wait(firing.period_s):
            try:
                result = self._invoke(firing.schedule.target_logical_id, firing.schedule.payload)
            except Exception as exc:  # no retries (MaximumRetryAttempts 0): the next period runs again
                log.warning("schedule %s: invoke failed: %s", firing.schedule.logical_id, exc)
                result = {"error": str(exc)}
            firing.results.append(result)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)


def schedule_runs(scheduler: Scheduler | None) -> dict[str, Any]:
    """Per schedule: its period, how often it fired, and its results summed (the reconciler's counts)."""
    if scheduler is None:
        return {}
    out: dict[str, Any] = {}
    for f in scheduler.firings:
        totals: dict[str, int] = {}
        for result in list(f.results):
            for key, value in result.items():
                if isinstance(value, int):
                    totals[key] = totals.get(key, 0) + value
        errors = sum(1 for r in f.results if "error" in r)
        out[f.schedule.logical_id] = {"period_s": f.period_s, "runs": len(f.results), "errors": errors, **totals}
    for skipped in scheduler.skipped:
        out[skipped] = {"runs": 0, "not_fired": True}
    return out
