"""Where the machine's CPU went during a sale: the sandbox's own processes by role, and everything else.

Every emulated service, Lambda environment and ECS task is a local process, so when a bar is missed the
first question is which of them the machine could not serve. Read from /proc (Linux): the machine's busy
and total jiffies, and each descendant process's user + system time, at the start and the end.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Snapshot:
    busy: int  # machine jiffies not idle/iowait
    total: int
    processes: dict[int, tuple[str, int]]  # pid -> (role, user+system jiffies)


def _machine() -> tuple[int, int]:
    fields = [int(x) for x in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle, sum(fields[:8])


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, user+system jiffies), or None for a process that is gone."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return int(rest[1]), int(rest[11]) + int(rest[12])


def role_of(cmdline: str, data_port: str) -> str:
    """What a process of the sandbox is, from its command line."""
    if "sandbox.emulator.server" in cmdline:
        return "emulator: DynamoDB" if f"--port {data_port}" in cmdline else "emulator: the other services"
    if "sandbox.emulator.lambda_env" in cmdline:
        handler = cmdline.split("sandbox.emulator.lambda_env", 1)[1].split()[:1]
        name = handler[0].removeprefix("orders.entrypoints.") if handler else "?"
        return f"lambda: {name.split('.')[0]}"
    if "sandbox.emulator.api_front" in cmdline:
        return "API and WebSocket fronts"
    if "worker_ecs" in cmdline:
        return "ecs: tasks"
    if "locust" in cmdline:
        return "load (Locust)"
    return "other sandbox processes"


def _descendants(root: int, data_port: str) -> dict[int, tuple[str, int]]:
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (got := _stat(int(entry.name))) is not None:
            parents[int(entry.name)], times[int(entry.name)] = got
    ours = {root}
    for _ in range(6):  # the tree is a few levels deep: sandbox -> api front -> environments
        ours |= {pid for pid, parent in parents.items() if parent in ours}
    out: dict[int, tuple[str, int]] = {}
    for pid in ours:
        try:
            cmd = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        out[pid] = ("sandbox control plane" if pid == root else role_of(cmd, data_port), times.get(pid, 0))
    return out


def free_cores(sample_s: float = 1.0) -> float:
    """Cores not busy right now (one short /proc/stat sample); all of them where there is no /proc."""
    cores = os.cpu_count() or 1
    if not (PROC / "stat").exists():
        return float(cores)
    b0, t0 = _machine()
    time.sleep(sample_s)
    b1, t1 = _machine()
    return max(0.5, cores * (1 - (b1 - b0) / max(1, t1 - t0)))


def snapshot(data_port: str) -> Snapshot | None:
    """Now: the machine's jiffies and this process tree's, or None where there is no /proc."""
    if not (PROC / "stat").exists():
        return None
    busy, total = _machine()
    return Snapshot(busy=busy, total=total, processes=_descendants(os.getpid(), data_port))


def cpu_use(start: Snapshot | None, end: Snapshot | None, cores: int | None = None) -> dict[str, object] | None:
    """Cores used between two snapshots: the machine, the sandbox by role, and outside the sandbox.

    A process that ended between the snapshots is not counted (its last jiffies are gone with it): the
    roles are a lower bound, and ``outside_sandbox`` an upper one."""
    if start is None or end is None or end.total <= start.total:
        return None
    cores = cores or os.cpu_count() or 1
    scale = cores / (end.total - start.total)  # jiffies -> cores over the window
    by_role: dict[str, float] = {}
    for pid, (role, jiffies) in end.processes.items():
        before = start.processes.get(pid, (role, 0))[1]
        by_role[role] = by_role.get(role, 0.0) + max(0, jiffies - before) * scale
    machine = (end.busy - start.busy) * scale
    ours = sum(by_role.values())
    return {
        "cores": cores,
        "busy_share": round(machine / cores, 3),
        "cores_used": round(machine, 2),
        "by_role_cores": {k: round(v, 2) for k, v in sorted(by_role.items(), key=lambda kv: -kv[1])},
        "outside_sandbox_cores": round(max(0.0, machine - ours), 2),
    }
