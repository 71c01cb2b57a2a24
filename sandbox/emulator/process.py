"""Local processes standing in for AWS compute: the time scale and the environment they run with."""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxError

ROOT = Path(__file__).resolve().parents[2]


RUNTIME = ROOT / "runtime"


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
        if "RECONCILE_AFTER_S" in out:  # the reconciler's "stuck" age, as the schedule that runs it is scaled
            out["RECONCILE_AFTER_S"] = str(max(1, int(int(out["RECONCILE_AFTER_S"]) / k.k)))
        out["SQS_WAIT_TIME_S"] = str(max(1, int(20 / k.k)))
        out.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        out.setdefault("LOG_LEVEL", "WARNING")
        out["WORKER_STATS_INTERVAL_S"] = "3600"
        return out


def free_port(port: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise SandboxError(f"port {port} on 127.0.0.1 is in use; pass --port with a free one") from None
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    if proc.stdin:
        proc.stdin.close()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
