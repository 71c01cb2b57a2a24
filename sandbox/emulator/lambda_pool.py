"""Lambda execution environments as local processes, capped at the function's concurrency."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.emulator.process import ROOT


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
        self.prewarmed: list[float] = []  # init times of environments started before any request
        self.invocations: list[tuple[int, float]] = []  # (records, seconds) of each invoke that returned
        self.peak = 0

    def _spawn(self) -> Environment:
        n = len(self.cold_starts)
        stderr = (self.log_dir / f"lambda-{self.name}-{n}.log").open("w")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sandbox.emulator.lambda_env",
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

    def warm(self, count: int, *, cold: bool = True) -> None:
        """Start ``count`` environments before any traffic (as a burst of invokes would). ``cold=False``: they
        start before the function takes requests (Managed Instances), so no invoke waits for them."""
        for _ in range(min(count, self.max_envs) - self.active):
            env = self._spawn()
            if not cold:
                self.prewarmed.append(self.cold_starts.pop())
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
        started = time.monotonic()
        if not done.wait(self.timeout_s):
            env.proc.kill()  # a timed-out environment is discarded, as Lambda does
            self._discard(env)
            return {"ok": False, "error": "Task timed out"}
        if result.get("error") == "environment died":
            self._discard(env)  # Lambda replaces a crashed environment with a fresh one on the next invoke
        elif result.get("ok") and not (result.get("result") or {}).get("batchItemFailures"):
            # only invokes that paid their whole batch: a failed record's time is not a payment's
            self.invocations.append((len(event.get("Records", [])), time.monotonic() - started))
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
