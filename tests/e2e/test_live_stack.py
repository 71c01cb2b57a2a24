"""`make up` end to end: a stack that stays up, adopts a threshold deploy and a compute switch, and goes down.

GIVEN a local stack brought up with the ECS workers
WHEN ops deploy a new backlogPerTaskTarget, then switch compute to Lambda while orders keep arriving
THEN the autoscaler scales on the new target, every order accepted before, during and after the switch ends
     terminal and is charged once, and `down` leaves no process behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

if shutil.which("npx") is None or not (ROOT / "node_modules" / ".bin" / "cdk").exists():
    pytest.fail("the e2e tests need the CDK CLI: run `make setup` (npm ci) first", pytrace=False)


def sandbox(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def wait_until(what: str, check: Any, timeout_s: float, interval_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


SIGNED_IN: dict[str, str] = {}  # the customer's Authorization header, from `python -m sandbox token`


def place_order(api: str) -> str:
    body = json.dumps(
        {"items": [{"sku": "SKU-CAP", "qty": 1, "price": "7.50"}], "currency": "USD", "payment_token": "tok_visa"}
    ).encode()
    headers = {"Content-Type": "application/json", **SIGNED_IN}
    req = urllib.request.Request(f"{api}/orders", data=body, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 202
        return str(json.loads(resp.read())["order_id"])


def order_status(api: str, order_id: str) -> str:
    req = urllib.request.Request(f"{api}/orders/{order_id}", headers=SIGNED_IN)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return str(json.loads(resp.read())["status"])


SMOKE_ORDERS = 2  # one `make smoke` on ecs, one after the switch to lambda


def queue_counts(stack: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """(visible, in flight) of the orders queue and its DLQ, for a failure message."""
    import boto3

    sqs = boto3.client("sqs", endpoint_url=stack["endpoint"], region_name="us-east-1")
    out = {}
    for name in ("ORDERS_QUEUE_URL", "ORDERS_DLQ_URL"):
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        a = sqs.get_queue_attributes(QueueUrl=stack["names"][name], AttributeNames=names)["Attributes"]
        out[name] = (a["ApproximateNumberOfMessages"], a["ApproximateNumberOfMessagesNotVisible"])
    return out


def smoke_test(env: dict[str, str], compute: str) -> None:
    """`make smoke` against the running stack: an order paid over HTTP and pushed over the WebSocket."""
    proc = subprocess.run(
        [sys.executable, "-m", "ops.smoke", "--local", "--timeout", "60"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, f"smoke on {compute}:\n{proc.stdout}{proc.stderr}"
    assert "smoke: PASSED (6/6 steps)" in proc.stdout
    for step in ("accept", "pay (HTTP)", "track (WebSocket)", "dead-letter queues"):
        assert f"ok   {step}" in proc.stdout, proc.stdout


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_live_stack_adopts_a_threshold_and_a_compute_switch_with_orders_in_flight(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {
        **os.environ,
        "SANDBOX_STATE_DIR": str(state),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }
    # Time x10: a metric period is 6 s, so target tracking's 3 datapoints fit in a test; one consumer per
    # task keeps a backlog long enough for the autoscaler to see it.
    up = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "up", "--compute", "ecs", "--time-scale", "10"]
        + ["-c", "workerConcurrency=1", "--reports", str(tmp_path / "reports")],
        cwd=ROOT,
        env=env,
        stdout=(tmp_path / "up.log").open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    pids: set[int] = set()
    try:
        stack = wait_until(
            "the stack to be up", lambda: up.poll() is None and read_json(state / "stack.json"), 240, interval_s=1
        )
        assert up.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
        api = stack["api_url"]
        assert (state / "env.sh").read_text().count("export AWS_ENDPOINT_URL=http://localhost:") == 1

        # A second `up` while one runs says so in one line.
        second = sandbox(env, "up", "--compute", "ecs")
        assert second.returncode == 1 and "already up" in second.stderr and len(second.stderr.splitlines()) == 1

        # A customer signs in (the stack's JWT authorizer checks the sandbox issuer's tokens); unsigned is 401.
        token = sandbox(env, "token", "cust-live")
        assert token.returncode == 0, token.stderr
        with pytest.raises(urllib.error.HTTPError) as unsigned:
            place_order(api)
        assert unsigned.value.code == 401
        SIGNED_IN["Authorization"] = f"Bearer {token.stdout.strip()}"
        # Orders placed by hand are paid.
        first = [place_order(api) for _ in range(5)]
        wait_until("the first orders to be paid", lambda: all(order_status(api, o) == "PAID" for o in first), 60)
        smoke_test(env, "ecs")

        # A threshold deploy is adopted and used by the autoscaler.
        deployed = sandbox(env, "deploy-local", "-c", "backlogPerTaskTarget=2")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert "target tracking: backlogPerTaskTarget 100 -> 2" in deployed.stdout
        status = read_json(state / "status.json")
        assert status and status["params"]["backlogPerTaskTarget"] == 2
        with ThreadPoolExecutor(10) as pool:
            burst = list(pool.map(lambda _: place_order(api), range(100)))

        def scaled_on_new_target() -> bool:
            s = read_json(state / "status.json") or {}
            return any("target 2" in a["why"] and a["to"] > a["from"] >= 1 for a in s.get("activities", []))

        wait_until("a scale-out on backlogPerTaskTarget 2", scaled_on_new_target, 120)

        # Switch compute while orders keep arriving.
        during: list[str] = []
        stop = threading.Event()

        def trickle() -> None:
            while not stop.is_set():
                during.append(place_order(api))
                time.sleep(0.2)

        feeder = threading.Thread(target=trickle)
        feeder.start()
        try:
            switched = sandbox(env, "deploy-local", "--compute", "lambda")
            time.sleep(2)
        finally:
            stop.set()
            feeder.join()
        assert switched.returncode == 0, switched.stdout + switched.stderr
        assert "compute: ecs -> lambda-sqs" in switched.stdout
        after = [place_order(api) for _ in range(5)]
        status = read_json(state / "status.json")
        assert status and status["compute"] == "lambda-sqs"
        smoke_test(env, "lambda-sqs")
        pids = descendants(up.pid)

        everything = first + burst + during + after
        assert len(during) >= 5, "orders must arrive while the switch is deployed"
        terminal = ("PAID", "PAYMENT_FAILED")
        try:
            wait_until(
                "every order terminal", lambda: all(order_status(api, o) in terminal for o in everything), 180, 2
            )
        except AssertionError:
            stuck = {o: order_status(api, o) for o in everything if order_status(api, o) not in terminal}
            groups = {"first": first, "burst": burst, "during": during, "after": after}
            where = {name: sum(o in stuck for o in group) for name, group in groups.items()}
            raise AssertionError(
                f"{len(stuck)} orders not terminal by phase {where}: {list(stuck.items())[:5]}; "
                f"queues: {queue_counts(stack)}"
            ) from None
        assert {order_status(api, o) for o in everything} == {"PAID"}
        status = wait_until(
            "the ledger to show every charge",
            lambda: (s := read_json(state / "status.json")) and s["charges"] >= len(everything) + SMOKE_ORDERS and s,
            30,
        )
        assert status["charges"] == len(everything) + SMOKE_ORDERS  # each smoke test pays one order of its own
        assert status["double_charges"] == 0
        assert status["dlq"] == 0
    finally:
        stopped = sandbox(env, "down", timeout=240)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
            raise
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert up.returncode == 0, (tmp_path / "up.log").read_text()[-3000:]
    assert pids, "the stack's processes were recorded"
    left = [p for p in pids if alive(p)]
    assert not left, f"processes left behind: {left}"
    assert not (state / "stack.json").exists()
    assert "no local stack is up" in sandbox(env, "down").stdout
