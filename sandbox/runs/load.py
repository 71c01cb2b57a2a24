"""Load generation: Locust runs of the sandbox's shoppers (sandbox/runs/locustfile.py), headless."""

from __future__ import annotations

import csv
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
    user_class: str, users: int, seconds: float, host: str, out: Path, decline_share: str = "0"
) -> dict[str, Any]:
    prefix = out / user_class.lower()
    # A checkout in flight when the load ends still gets its answer (a shopper does not vanish
    # mid-request): on a loaded machine a sync checkout's first answer can take longer than a short phase.
    cmd = [*locust_command(user_class, users, seconds, host, stop_timeout_s=IN_FLIGHT_S), "--csv", str(prefix)]
    started = time.monotonic()
    env = {**os.environ, "SANDBOX_DECLINE_SHARE": decline_share, "SANDBOX_CHECKOUT_LOG": str(out / "checkouts.jsonl")}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120, env=env)
    elapsed = time.monotonic() - started
    stats_file = Path(f"{prefix}_stats.csv")
    if not stats_file.exists():
        raise SandboxError(f"locust produced no statistics: {proc.stderr.strip().splitlines()[-1:]}")
    rows = {r["Name"]: r for r in csv.DictReader(stats_file.open())}
    row = next((r for name, r in rows.items() if name.startswith("POST")), None)
    if row is None:
        said = " | ".join(proc.stderr.strip().splitlines()[-3:]) or "nothing"
        raise SandboxError(
            f"{user_class}: no order was placed in {seconds:.1f} s of load; give the sale longer (--duration)"
            f" (Locust said: {said})"
        )
    return {
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "p50_ms": float(row["50%"]),
        "p99_ms": float(row["99%"]),
        "rps": float(row["Requests/s"]),
        "elapsed_s": elapsed,
    }


TRACKER_SHARE = 5  # one tracking user per this many flash-sale users
TRACK_TIMEOUT_REAL_S = 150.0  # how long a customer keeps watching one order


def start_trackers(users: int, seconds: float, host: str, ws_url: str, out: Path) -> subprocess.Popen[str]:
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
