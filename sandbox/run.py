"""One sandbox run: emulator -> cdk deploy -> control plane -> flash sale -> drain -> report."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox import control, report
from sandbox.deploy import aws_env, deploy, wait_for

log = logging.getLogger("sandbox")
ROOT = Path(__file__).resolve().parents[1]

SCENARIOS = {"normal": (5, 30.0), "flash": (20, 60.0)}  # users, seconds (real time), per checkout path
# What 2 cores can emulate: every Lambda environment and ECS task is a real local process.
SANDBOX_CONTEXT = {"reservedConcurrency": "10", "maxConcurrency": "10", "maxTasks": "10"}


class SandboxError(RuntimeError):
    """A failure the user can act on; printed as one line."""


@dataclass
class Options:
    compute: str = "lambda"
    scenario: str = "flash"
    time_scale: float = 5.0
    users: int | None = None
    duration_s: float | None = None
    drain_timeout_s: float = 300.0
    port: int = 0
    context: dict[str, str] | None = None
    reports: Path = ROOT / "reports"


def free_port(port: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise SandboxError(f"port {port} on 127.0.0.1 is in use; pass --port with a free one") from None
        return int(s.getsockname()[1])


class ApiStats:
    """Reads the API process's counters (responses by route and status, orders accepted)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.port = int(base.rsplit(":", 1)[1])

    def stats(self) -> dict[str, Any]:
        import urllib.request

        from sandbox.api_front import STATS_PATH

        with urllib.request.urlopen(self.base + STATS_PATH, timeout=5) as resp:
            return dict(json.loads(resp.read()))

    @property
    def accepted(self) -> int:
        return int(self.stats()["accepted"])


class Sampler:
    """Samples queue depth, workers and accepted orders twice a second for the report."""

    def __init__(self, probe: Any) -> None:
        self.probe = probe
        self.rows: list[dict[str, float]] = []
        self.stop = threading.Event()
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)

    def _loop(self) -> None:
        while not self.stop.wait(0.5):
            try:
                self.rows.append({"t": time.monotonic() - self.t0, **self.probe()})
            except Exception:
                log.exception("sample failed")

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=5)


def run_locust(user_class: str, users: int, seconds: float, host: str, out: Path) -> dict[str, Any]:
    prefix = out / user_class.lower()
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "sandbox" / "locustfile.py"),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{max(1, round(seconds))}s",
        "--host",
        host,
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--stop-timeout",
        "5",
        user_class,
    ]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120)
    elapsed = time.monotonic() - started
    stats_file = Path(f"{prefix}_stats.csv")
    if not stats_file.exists():
        raise SandboxError(f"locust produced no statistics: {proc.stderr.strip().splitlines()[-1:]}")
    rows = {r["Name"]: r for r in csv.DictReader(stats_file.open())}
    row = next(r for name, r in rows.items() if name.startswith("POST"))
    return {
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "p50_ms": float(row["50%"]),
        "p99_ms": float(row["99%"]),
        "rps": float(row["Requests/s"]),
        "elapsed_s": elapsed,
    }


def _orders(ddb: Any, table: str) -> list[dict[str, Any]]:
    items, kwargs = [], {"TableName": table}
    while True:
        resp = ddb.scan(**kwargs)
        items += [{k: next(iter(v.values())) for k, v in item.items()} for item in resp["Items"]]
        if "LastEvaluatedKey" not in resp:
            return items
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def _dlq_order_ids(sqs: Any, url: str) -> set[str]:
    ids: set[str] = set()
    seen: set[str] = set()
    for _ in range(200):
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages", [])
        fresh = [m for m in msgs if m["MessageId"] not in seen]
        if not fresh:
            break
        for m in fresh:
            seen.add(m["MessageId"])
            body = json.loads(m["Body"])
            if "requestPayload" in body:  # Lambda on-failure destination record
                body = json.loads(body["requestPayload"]["Records"][0]["Sns"]["Message"])
            ids.add(str(body.get("order_id")))
    return ids


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def rate_between(stamps: list[str]) -> float:
    """Events per second of a steady stream, from the first to the last ISO timestamp (n - 1 intervals)."""
    times = sorted(_seconds(t) for t in stamps)
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


def completion_rate(orders: list[dict[str, Any]]) -> float:
    """Orders completed per second, from the first order's start to the last one's end.

    Payments finish in waves of ``slots`` every ``latency``: timed from the first completion, the
    first wave's latency would be missing and the rate would read high by one wave.
    """
    if not orders:
        return 0.0
    span = max(_seconds(o["updated_at"]) for o in orders) - min(_seconds(o["created_at"]) for o in orders)
    return len(orders) / span if span > 0 else 0.0


def _emulator(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """A moto server child process; it exits when its stdin (our end of the pipe) closes."""
    return subprocess.Popen(
        [sys.executable, "-m", "sandbox.emulator", "--port", str(port)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )


def mirror_tables(deployed: Any, data_plane: Any) -> list[str]:
    """Create every deployed table, as CloudFormation described it, in the DynamoDB data-plane emulator."""
    names: list[str] = []
    for page in deployed.get_paginator("list_tables").paginate():
        names += page["TableNames"]
    for name in names:
        table = deployed.describe_table(TableName=name)["Table"]
        spec: dict[str, Any] = {
            "TableName": name,
            "KeySchema": table["KeySchema"],
            "AttributeDefinitions": table["AttributeDefinitions"],
            "BillingMode": "PAY_PER_REQUEST",
        }
        if table.get("GlobalSecondaryIndexes"):
            spec["GlobalSecondaryIndexes"] = [
                {k: g[k] for k in ("IndexName", "KeySchema", "Projection")} for g in table["GlobalSecondaryIndexes"]
            ]
        data_plane.create_table(**spec)
        ttl = deployed.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and ttl.get("AttributeName"):
            data_plane.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
            )
    return names


def run(opts: Options, progress: Any = print) -> dict[str, Any]:
    if shutil.which("node") is None or shutil.which("npx") is None:
        raise SandboxError("node/npx not found: install Node.js 20+ (the CDK CLI runs on it)")
    port = free_port(opts.port)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    label = opts.compute
    workdir = opts.reports / f"{stamp}-{label}"
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    k = control.Scale(opts.time_scale)
    users, real_seconds = SCENARIOS[opts.scenario]
    users = opts.users or users
    real_seconds = opts.duration_s or real_seconds
    phase_s = k.seconds(real_seconds, 1.0)

    endpoint = f"http://localhost:{port}"
    emulator = _emulator(port, workdir / "logs" / "emulator.log")
    # DynamoDB's data plane in a second emulator process: one moto process is bound to one
    # core by the GIL, and the table calls are most of a flash sale's requests.
    data_port = free_port(0)
    data_endpoint = f"http://localhost:{data_port}"
    data_emulator = _emulator(data_port, workdir / "logs" / "emulator-dynamodb.log")
    cleanup: list[Any] = []
    try:
        wait_for(endpoint)
        wait_for(data_endpoint)
        progress(f"emulator up on {endpoint}; deploying with the CDK CLI ...")
        context = {"compute": opts.compute, "retainData": "false", **SANDBOX_CONTEXT, **(opts.context or {})}
        t_deploy = time.monotonic()
        deployment = deploy(endpoint, context, workdir)
        progress(f"deployed {', '.join(deployment.outputs)} in {time.monotonic() - t_deploy:.0f} s")
        import boto3
        from botocore.config import Config

        os.environ.update(aws_env(endpoint))
        mirror_tables(boto3.client("dynamodb"), boto3.client("dynamodb", endpoint_url=data_endpoint))
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = data_endpoint
        many = Config(max_pool_connections=128)
        clients: dict[str, Any] = {s: boto3.client(s, config=many) for s in ("sqs", "sns", "dynamodb", "lambda", "ecs")}  # type: ignore[call-overload]
        sqs, sns, ddb, lam, ecs = (clients[s] for s in ("sqs", "sns", "dynamodb", "lambda", "ecs"))
        data = list(deployment.outputs[next(n for n in deployment.outputs if n.endswith("-data"))].values())

        def find(prefix: str, needle: str, exclude: str = "\0") -> str:
            return next(v for v in data if v.startswith(prefix) and needle in v and exclude not in v)

        queue_url = find("https://", "OrdersQueue")
        queue_arn = find("arn:aws:sqs", "OrdersQueue")
        dlq_url = find("https://", "OrdersDeadLetterQueue")
        orders_table = find("", "TablesOrders", "arn:")
        subs = control.wire_subscriptions(deployment, sns, sqs)

        base = {"PATH": os.environ.get("PATH", ""), **aws_env(endpoint), "AWS_ENDPOINT_URL_DYNAMODB": data_endpoint}
        penv = control.ProcessEnv(base=base, scale=k)
        api_cfg = lam.get_function_configuration(FunctionName=deployment.output("-service", "ApiFunctionName"))
        api_log = (workdir / "logs" / "api.log").open("w")
        api_proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox.api_front"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=api_log,
            text=True,
            env=penv.for_runtime(api_cfg["Environment"]["Variables"], sandbox_host=True),
        )
        assert api_proc.stdout is not None and api_proc.stdin is not None
        first = api_proc.stdout.readline()
        if not first:
            raise SandboxError(f"the API process did not start (see {api_log.name})")
        api_port = int(json.loads(first)["port"])
        cleanup.append(lambda: (api_proc.stdin.close(), api_proc.wait(timeout=10)))  # type: ignore[union-attr]
        front = ApiStats(f"http://127.0.0.1:{api_port}")

        pool = None
        service = None
        tap_url = None
        compute = deployment.output("-service", "Compute")
        if compute.startswith("lambda"):
            fn = lam.get_function_configuration(FunctionName=deployment.output("-service", "WorkerFunctionName"))
            reserved = lam.get_function_concurrency(FunctionName=fn["FunctionName"]).get("ReservedConcurrentExecutions")
            mappings = lam.list_event_source_mappings(FunctionName=fn["FunctionName"])["EventSourceMappings"]
            for m in mappings:  # moto would try to run the function itself; the control plane does
                lam.update_event_source_mapping(UUID=m["UUID"], Enabled=False)
            max_envs = int(reserved or 1000)
            if mappings:
                max_envs = min(max_envs, int(mappings[0].get("ScalingConfig", {}).get("MaximumConcurrency", max_envs)))
            pool = control.LambdaPool(
                handler=fn["Handler"],
                name=fn["FunctionName"],
                env=penv.for_runtime(fn["Environment"]["Variables"], sandbox_host=True),
                # Not time-scaled: the timeout guards CPU work (imports, clients), which the scale does not shorten.
                timeout_s=float(fn["Timeout"]),
                memory_mb=fn["MemorySize"],
                max_envs=max_envs,
                log_dir=workdir / "logs",
            )
            cleanup.append(pool.close)
            if mappings:
                visibility = int(
                    sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])["Attributes"][
                        "VisibilityTimeout"
                    ]
                )
                esm = control.SqsEventSource(
                    sqs=sqs,
                    queue_url=queue_url,
                    queue_arn=queue_arn,
                    pool=pool,
                    batch_size=int(mappings[0]["BatchSize"]),
                    visibility_s=max(2, int(visibility / k.k)),
                    wait_s=1,
                )
                esm.start(max_envs)
                cleanup.insert(0, esm.close)
            else:
                [invoke_cfg] = control.resources(deployment.template("-service"), "AWS::Lambda::EventInvokeConfig")
                tap_url = subs["lambda"]["tap_url"]
                invoker = control.SnsAsyncInvoker(
                    sqs=sqs,
                    tap_url=tap_url,
                    pool=pool,
                    retries=int(invoke_cfg["MaximumRetryAttempts"]),
                    max_age_s=k.seconds(float(invoke_cfg["MaximumEventAgeInSeconds"])),
                    dlq_url=dlq_url,
                    scale=k,
                )
                invoker.start(max_envs)
                cleanup.insert(0, invoker.close)
            workers_probe = lambda: pool.busy  # noqa: E731
            payments_per_worker = 1  # an invocation pays its batch's records one after another
            progress(f"lambda: up to {max_envs} environments ({compute})")
        else:
            env, command, stop_timeout = control.task_definition(ecs, deployment)
            payments_per_worker = min(int(env["WORKER_CONCURRENCY"]), int(env["PAYMENT_SLOTS"]))
            policy = control.ScalingPolicy.from_template(deployment.template("-service"))
            service = control.EcsService(
                env=penv.for_runtime(env),
                command=command,
                stop_timeout_s=stop_timeout,
                policy=policy,
                sqs=sqs,
                queue_url=queue_url,
                scale=k,
                log_dir=workdir / "logs",
            )
            service.start()
            cleanup.insert(0, service.close)
            workers_probe = service.running
            progress(
                f"ecs: tasks {policy.min_tasks}..{policy.max_tasks}, target backlog/task {policy.target:g}, "
                f"wake at {policy.wake_depth} visible"
            )

        def backlog() -> tuple[int, int]:
            attrs = sqs.get_queue_attributes(
                QueueUrl=tap_url or queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            visible, inflight = (
                int(attrs["ApproximateNumberOfMessages"]),
                int(attrs["ApproximateNumberOfMessagesNotVisible"]),
            )
            if pool is not None and tap_url:
                inflight += pool.busy
            return visible, inflight

        def probe() -> dict[str, float]:
            visible, inflight = backlog()
            dlq = int(
                sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])[
                    "Attributes"
                ]["ApproximateNumberOfMessages"]
            )
            return {
                "visible": visible,
                "inflight": inflight,
                "dlq": dlq,
                "workers": float(workers_probe()),
                "accepted": float(front.accepted),
            }

        sampler = Sampler(probe)
        sampler.start()
        cleanup.insert(0, sampler.close)
        host = f"http://127.0.0.1:{front.port}"

        progress(f"sync checkout: {users} users for {phase_s:.0f} s (time scale {k.k:g}) ...")
        t_sync = time.monotonic() - sampler.t0
        sync_stats = run_locust("SyncBuyer", users, phase_s, host, workdir / "logs")
        sync_end = time.monotonic() - sampler.t0
        progress(f"async checkout: {users} users for {phase_s:.0f} s ...")
        async_start_wall = datetime.now(UTC).isoformat(timespec="milliseconds")
        t_async = time.monotonic() - sampler.t0
        accepted_before = front.accepted
        async_stats = run_locust("AsyncBuyer", users, phase_s, host, workdir / "logs")
        t_load_end = time.monotonic() - sampler.t0
        accepted = front.accepted - accepted_before
        end_visible, end_inflight = backlog()
        end_backlog = end_visible + end_inflight
        progress(f"accepted {accepted} orders; backlog {end_backlog}; draining ...")
        deadline = time.monotonic() + opts.drain_timeout_s
        last = 0.0
        while time.monotonic() < deadline:
            v, i = backlog()
            if v + i == 0:
                break
            if time.monotonic() - last > 5:
                progress(f"  backlog {v + i} ({v} waiting, {i} in flight), workers {workers_probe()}")
                last = time.monotonic()
            time.sleep(0.25)
        t_drained = time.monotonic() - sampler.t0
        drained = sum(backlog()) == 0
        time.sleep(0.5)
        sampler.close()

        orders = _orders(ddb, orders_table)
        async_orders = [o for o in orders if o["created_at"] >= async_start_wall]
        sync_orders = [o for o in orders if o["created_at"] < async_start_wall]
        dead = _dlq_order_ids(sqs, dlq_url)
        terminal = {"PAID", "PAYMENT_FAILED"}
        lost = [o for o in async_orders if o["status"] not in terminal and o["order_id"] not in dead]
        rows = sampler.rows

        # Measured processing capacity: orders finished per second (accepted - waiting - in flight -
        # dead, from the queue counts) after the load stopped, while the most workers ran and orders
        # still waited, so no worker was idle. The prediction spends that capacity, per worker, over the
        # workers that actually ran after the load (a scale-up still under way counts); a longer drain
        # means time lost to stragglers, retries or stalls.
        def finished(r: dict[str, float]) -> float:
            return r["accepted"] - r["visible"] - r["inflight"] - r["dlq"]

        busy = [r for r in rows if t_load_end <= r["t"] <= t_drained and r["visible"] > 0]
        peak_workers = max((r["workers"] for r in busy), default=0)
        at_peak = [r for r in busy if r["workers"] == peak_workers]
        if len(at_peak) > 1 and at_peak[-1]["t"] > at_peak[0]["t"]:
            window = (at_peak[0]["t"], at_peak[-1]["t"])
            # Least-squares slope over every sample: workers finish in bursts (a Lambda batch, a wave of
            # payments), so a difference of the two end samples depends on where they fall in a burst.
            capacity = statistics.linear_regression([r["t"] for r in at_peak], [finished(r) for r in at_peak]).slope
        else:
            window, capacity = (t_load_end, t_drained), 0.0
        drain_s = t_drained - t_load_end if end_backlog else 0.0
        slots = int(api_cfg["Environment"]["Variables"].get("PAYMENT_SLOTS", "5"))
        latency_s = int(api_cfg["Environment"]["Variables"].get("PAYMENT_LATENCY_MS", "3000")) / 1000
        worker_limit = payments_per_worker / (latency_s / k.k)  # what one worker's payment slots allow
        sync_paid = [o for o in sync_orders if o["status"] in terminal]
        # Rates over the time the load actually ran (from the orders table), so Locust's start-up
        # and shutdown are not counted as time the processor or the API was idle.
        sync_rate = completion_rate(sync_paid)
        accept_rate = rate_between([o["created_at"] for o in async_orders])
        summary: dict[str, Any] = {
            "compute": compute,
            "scenario": opts.scenario,
            "time_scale": k.k,
            "users": users,
            "phase_seconds": phase_s,
            "accepted": accepted,
            "rejected": async_stats["failures"],
            "processed": sum(1 for o in async_orders if o["status"] in terminal),
            "paid": sum(1 for o in async_orders if o["status"] == "PAID"),
            "payment_failed": sum(1 for o in async_orders if o["status"] == "PAYMENT_FAILED"),
            "dead_lettered": len(dead),
            "lost": len(lost),
            "accept_latency_ms": {"p50": async_stats["p50_ms"], "p99": async_stats["p99_ms"]},
            "sync": {
                "orders": len(sync_paid),
                "throughput_per_s": sync_rate,
                "throughput_per_s_real": sync_rate / k.k,
                "latency_ms": {"p50": sync_stats["p50_ms"], "p99": sync_stats["p99_ms"]},
                "latency_ms_real": {"p50": sync_stats["p50_ms"] * k.k, "p99": sync_stats["p99_ms"] * k.k},
                "limit_per_s": slots / (latency_s / k.k),
            },
            "async_accept_rate_per_s": accept_rate,
            "async_to_sync_ratio_real": None,
            "peak_queue_depth": int(max((r["visible"] for r in rows), default=0)),
            "backlog_at_load_end": end_backlog,
            "processing_capacity_per_s": capacity,
            "capacity_workers": peak_workers,
            "worker_limit_per_s": worker_limit,
            "capacity_window_s": list(window),
            "predicted_drain_seconds": report.predict_drain(
                rows,
                start=t_load_end,
                backlog=end_backlog,
                capacity=capacity,
                worker_limit=worker_limit,
            ),
            "predicted_drain_seconds_at_peak": end_backlog / capacity if capacity > 0 else None,
            "drain_seconds": drain_s,
            "drain_seconds_real": drain_s * k.k,
            "drained": drained,
            "max_workers": int(max((r["workers"] for r in rows), default=0)),
        }
        sync_real = summary["sync"]["throughput_per_s_real"]
        summary["async_to_sync_ratio_real"] = summary["async_accept_rate_per_s"] / sync_real if sync_real else None
        if pool is not None:
            summary["cold_starts"] = len(pool.cold_starts)
            summary["init_ms"] = {
                "p50": statistics.median(pool.cold_starts) if pool.cold_starts else 0.0,
                "max": max(pool.cold_starts, default=0.0),
            }
            summary["max_workers"] = max(summary["max_workers"], pool.peak)
            summary["concurrency_limit"] = pool.max_envs
        if service is not None:
            summary["scaling"] = {
                "min_tasks": service.policy.min_tasks,
                "max_tasks": service.policy.max_tasks,
                "target_backlog_per_task": service.policy.target,
                "peak_backlog_seen_by_autoscaler": service.peak_backlog_seen,
                "tasks_implied_by_peak_backlog": service.policy.desired(
                    visible=service.peak_backlog_seen, inflight=0, running=1
                ),
                "activities": [
                    {"t": round(a[0] - sampler.t0, 2), "from": a[1], "to": a[2], "why": a[3]}
                    for a in service.activities
                ],
            }
        summary["timeline"] = {
            "sync_start": t_sync,
            "sync_end": sync_end,
            "async_start": t_async,
            "load_end": t_load_end,
            "drained": t_drained,
        }
        report.write(workdir, summary, rows)
        return {"summary": summary, "dir": workdir}
    finally:
        for close in cleanup:
            try:
                close()
            except Exception:
                log.exception("cleanup failed")
        for proc in (emulator, data_emulator):
            if proc.stdin:
                proc.stdin.close()
        for proc in (emulator, data_emulator):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
