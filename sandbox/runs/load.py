"""Load generation: Locust runs of the sandbox's shoppers (sandbox/runs/locustfile.py), headless."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sandbox.emulator.process import ROOT
from sandbox.errors import SandboxError

LOCUSTFILE = ROOT / "sandbox" / "runs" / "locustfile.py"
IN_FLIGHT_S = 30  # real seconds a checkout in flight at the load's end may take to be answered


def locust_command(user_class: str, users: int, seconds: float, host: str, *, stop_timeout_s: int) -> list[str]:
    """A headless Locust run of one user class from sandbox/runs/locustfile.py, all users started at once."""
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{max(1, round(seconds))}s",
        "--host",
        host,
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--stop-timeout",
        str(stop_timeout_s),
        user_class,
    ]


def run_locust(
    user_class: str,
    users: int,
    seconds: float,
    host: str,
    out: Path,
    decline_share: str = "0",
    user_rate: float | None = None,
) -> dict[str, Any]:
    prefix = out / user_class.lower()
    # A checkout in flight when the load ends still gets its answer (a shopper does not vanish
    # mid-request): on a loaded machine a sync checkout's first answer can take longer than a short phase.
    # --json-file is written after the users stopped (the CSV's last write can predate the checkouts that
    # finished in the stop timeout): the figures come from it.
    cmd = [
        *locust_command(user_class, users, seconds, host, stop_timeout_s=IN_FLIGHT_S),
        "--csv",
        str(prefix),
        "--json-file",
        str(prefix),
    ]
    started = time.monotonic()
    env = {**os.environ, "SANDBOX_DECLINE_SHARE": decline_share, "SANDBOX_CHECKOUT_LOG": str(out / "checkouts.jsonl")}
    if user_rate:
        env["SANDBOX_USER_RATE"] = f"{user_rate:.4f}"  # checkouts per second per user (a sized sale)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120, env=env)
    elapsed = time.monotonic() - started
    stats_file = Path(f"{prefix}.json")
    if not stats_file.exists():
        raise SandboxError(f"locust produced no statistics: {proc.stderr.strip().splitlines()[-1:]}")
    entry = _entry(json.loads(stats_file.read_text()), "POST")
    if entry is None:
        said = " | ".join(proc.stderr.strip().splitlines()[-3:]) or "nothing"
        raise SandboxError(
            f"{user_class}: no order was placed in {seconds:.1f} s of load; give the sale longer (--duration)"
            f" (Locust said: {said})"
        )
    return {
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "p50_ms": float(entry.get_response_time_percentile(0.5) or 0),
        "p99_ms": float(entry.get_response_time_percentile(0.99) or 0),
        "rps": float(entry.total_rps),
        "elapsed_s": elapsed,
    }


def _entry(entries: list[dict[str, Any]], method: str) -> LocustEntry | None:
    """The first ``method`` entry of Locust's JSON statistics. Read here without importing Locust: its
    import monkey-patches the process with gevent, which the sandbox's threads must not run under."""
    for data in entries:
        if data.get("method") == method:
            return LocustEntry(data)
    return None


class LocustEntry:
    """Counts, percentiles (Locust's rounded response-time buckets) and rate of one JSON stats entry."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.num_requests = int(data["num_requests"])
        self.num_failures = int(data["num_failures"])
        self._times = sorted((int(float(k)), int(n)) for k, n in data["response_times"].items())
        span = float(data["last_request_timestamp"] or 0) - float(data["start_time"] or 0)
        self.total_rps = self.num_requests / span if span > 0 else 0.0

    def get_response_time_percentile(self, share: float) -> float:
        """The smallest bucket at or above ``share`` of the requests, as Locust computes it."""
        if not self._times:
            return 0.0
        wanted = self.num_requests - int(self.num_requests * share)
        seen = 0
        for bucket, n in reversed(self._times):
            seen += n
            if seen >= wanted:
                return float(bucket)
        return float(self._times[0][0])


TRACKER_SHARE = 5  # one tracking user per this many flash-sale users
TRACK_TIMEOUT_REAL_S = 150.0  # how long a customer keeps watching one order


def start_trackers(
    users: int, seconds: float, host: str, ws_url: str, out: Path, every_s: float | None = None
) -> subprocess.Popen[str]:
    """Customers who check out and follow their order over WebSocket, for the length of the async load.

    Its own Locust process: a tracker holds its user until its order is paid (through the drain), which
    the flash sale's own users must not wait for.
    """
    log = out / "tracking.jsonl"
    log.unlink(missing_ok=True)
    # The stop timeout lets a tracker finish following its order after the load ends.
    cmd = locust_command("TrackingBuyer", users, seconds, host, stop_timeout_s=int(TRACK_TIMEOUT_REAL_S) + 10)
    env = {
        **os.environ,
        "SANDBOX_TRACKING_LOG": str(log),
        "SANDBOX_TRACKING_URL": ws_url,
        "SANDBOX_TRACK_TIMEOUT_S": str(TRACK_TIMEOUT_REAL_S),
        # They buy what stays in stock: a "sold out" answer leaves no order to follow, and the sample of
        # tracked orders would shrink with the scarce SKU's stock (the sale's own users still race for it).
        "SANDBOX_SCARCE_SHARE": "0",
        **({"SANDBOX_TRACK_EVERY_S": f"{every_s:.3f}"} if every_s else {}),  # a sized sale paces them too
    }
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=(out / "trackers.log").open("w"), text=True
    )


def kill(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.kill()


def finish_trackers(proc: subprocess.Popen[str], out: Path) -> list[dict[str, Any]]:
    try:
        proc.wait(timeout=TRACK_TIMEOUT_REAL_S + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
    log = out / "tracking.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
