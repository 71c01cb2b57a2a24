"""What the sale asked of the emulator: requests by service and operation, per accepted order and per second.

The counts come from the emulator processes themselves (sandbox/emulator/request_counts.py), from the
start of the async sale to the end of the drain: every request the pipeline made for those orders (the
API, the workers, the pollers, the consumers, the trackers and the sandbox's own probes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Counts = Mapping[str, Mapping[str, int]]


def merge(*parts: Counts) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for part in parts:
        for service, ops in part.items():
            mine = out.setdefault(service, {})
            for op, n in ops.items():
                mine[op] = mine.get(op, 0) + int(n)
    return out


def emulator_cost(counts: Counts, *, orders: int, seconds: float, top: int = 12) -> dict[str, Any]:
    """Requests in all, per order and per second; by service; the ``top`` operations per order."""
    total = sum(n for ops in counts.values() for n in ops.values())
    per = (lambda n: round(n / orders, 2)) if orders > 0 else (lambda n: None)
    ops = sorted(((f"{s}:{op}", n) for s, o in counts.items() for op, n in o.items()), key=lambda x: (-x[1], x[0]))
    return {
        "requests": total,
        "orders": orders,
        "seconds": round(seconds, 1),
        "per_order": per(total),
        "per_second": round(total / seconds, 1) if seconds > 0 else None,
        "by_service_per_order": {s: per(sum(o.values())) for s, o in sorted(counts.items())},
        "top_per_order": {name: per(n) for name, n in ops[:top]},
    }


SATURATED = 0.9  # busy share of one core, for the process that serves one request at a time
MACHINE_SATURATED = 0.8  # busy share of the machine beyond which processes wait for a core


def bottleneck(summary: Mapping[str, Any]) -> str | None:
    """One line naming the part of the machine that held the sale back, when a bar was missed."""
    if all(b["met"] for b in summary.get("bars", [])):
        return None
    cpu = summary.get("cpu")
    if not cpu:
        return "bottleneck: unknown (no CPU figures on this platform)"
    roles = cpu["by_role_cores"]
    dynamodb = roles.get("emulator: DynamoDB", 0.0)
    top = ", ".join(f"{role} {used:.2f}" for role, used in list(roles.items())[:3])
    outside = cpu["outside_sandbox_cores"]
    elsewhere = f"; {outside:.2f} cores went to processes outside the sandbox" if outside >= 0.25 else ""
    if dynamodb >= SATURATED:
        return (
            f"bottleneck: the DynamoDB emulator, at {dynamodb:.2f} of a core (it serves one request at a time)"
            f"{elsewhere}"
        )
    if cpu["busy_share"] >= MACHINE_SATURATED:
        busy = f"{cpu['busy_share']:.0%} of {cpu['cores']} cores busy"
        return f"bottleneck: the machine's CPU, {busy} (cores: {top}){elsewhere}"
    eff = summary.get("worker_efficiency")
    if eff and eff["ratio"] < 0.85:
        slots = f"{eff['ratio']:.2f} of their slots' limit"
        return f"bottleneck: the workers, at {slots} with the CPU {cpu['busy_share']:.0%} busy"
    return f"bottleneck: none found in the CPU ({cpu['busy_share']:.0%} busy; cores: {top}): see the missed bars"
