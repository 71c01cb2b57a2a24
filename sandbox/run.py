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
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from planner.config import AppConfig, context_of, resolve
from planner.model import Timing, Workload, simulate
from sandbox import control, metrics, report
from sandbox.cfn_resources import async_queue_name
from sandbox.chaos import ChaosMonkey, ChaosPlan, is_poison
from sandbox.deploy import Deployment, aws_env, deploy, wait_for

log = logging.getLogger("sandbox")
ROOT = Path(__file__).resolve().parents[1]

# users, seconds (real time), per checkout path. `flash` is what two cores serve without becoming the
# bottleneck the model bars would then measure: at 20 users x 60 s, the 20 API environments, Locust and
# the emulator left the Lambda workers short during the load (drain 28% over the model, efficiency 0.89).
SCENARIOS = {"normal": (5, 30.0), "flash": (10, 20.0), "source": (20, 60.0)}
# What 2 cores can emulate: every Lambda environment and ECS task is a real local process.
SANDBOX_CONTEXT = {"reservedConcurrency": "10", "maxConcurrency": "10", "maxTasks": "10"}


class SandboxError(RuntimeError):
    """A failure the user can act on; printed as one line."""


@dataclass
class Options:
    compute: str = "lambda"
    scenario: str = "flash"
    time_scale: float = 1.0
    users: int | None = None
    duration_s: float | None = None
    drain_timeout_s: float = 300.0
    port: int = 0
    context: dict[str, str] | None = None
    reports: Path = ROOT / "reports"
    label: str = ""  # appended to the report folder's name (e.g. "-sns")
    chaos: ChaosPlan | None = None  # the flash sale under faults (`make chaos`)


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

    def __init__(self, probe: Any, t0: float) -> None:
        self.probe = probe
        self.rows: list[dict[str, float]] = []
        self.stop = threading.Event()
        self.t0 = t0
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


def locust_command(user_class: str, users: int, seconds: float, host: str, *, stop_timeout_s: int) -> list[str]:
    """A headless Locust run of one user class from sandbox/locustfile.py, all users started at once."""
    return [
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
    cmd = [*locust_command(user_class, users, seconds, host, stop_timeout_s=5), "--csv", str(prefix)]
    started = time.monotonic()
    env = {**os.environ, "SANDBOX_DECLINE_SHARE": decline_share}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120, env=env)
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


def _kill(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.kill()


def finish_trackers(proc: subprocess.Popen[str], out: Path) -> list[dict[str, Any]]:
    try:
        proc.wait(timeout=TRACK_TIMEOUT_REAL_S + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
    log = out / "tracking.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []


def _orders(ddb: Any, table: str) -> list[dict[str, Any]]:
    items, kwargs = [], {"TableName": table}
    while True:
        resp = ddb.scan(**kwargs)
        items += [{k: next(iter(v.values())) for k, v in item.items()} for item in resp["Items"]]
        if "LastEvaluatedKey" not in resp:
            return items
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def _dlq_order_ids(sqs: Any, url: str) -> tuple[set[str], int, int]:
    """Order ids of the good orders the DLQ holds, the chaos poison it holds, and other messages naming no order."""
    ids: set[str] = set()
    seen: set[str] = set()
    unnamed = 0
    poison = 0
    for _ in range(500):
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages", [])
        fresh = [m for m in msgs if m["MessageId"] not in seen]
        if not fresh:
            break
        for m in fresh:
            seen.add(m["MessageId"])
            if is_poison(m["Body"]):
                poison += 1
                continue
            order_id = metrics.dlq_order_id(m["Body"])
            if order_id is None:
                unnamed += 1
            else:
                ids.add(order_id)
    return ids, poison, unnamed


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
    existing = set(data_plane.list_tables()["TableNames"])
    for name in names:
        if name in existing:  # a live stack's redeploy: the data plane keeps the items it holds
            continue
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


@dataclass
class Pipeline:
    """The deployed stacks as the control plane sees them: endpoints, clients, resource names, config."""

    deployment: Deployment
    endpoint: str
    data_endpoint: str
    clients: dict[str, Any]
    topic_arn: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    orders_table: str
    penv: control.ProcessEnv
    api_env: dict[str, str]
    front: ApiStats
    config: AppConfig
    ledger_path: Path
    context: dict[str, str]
    api: ApiProcess | None = None

    @property
    def ws_url(self) -> str | None:
        return f"ws://127.0.0.1:{self.api.ws_port}" if self.api and self.api.ws_port else None

    def client(self, name: str) -> Any:
        return self.clients[name]


def _restore_environ(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _stop_process(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    if proc.stdin:
        proc.stdin.close()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


@dataclass
class ApiProcess:
    proc: subprocess.Popen[str]
    port: int
    ws_port: int | None  # the WebSocket (tracking) API, if the stack has one

    @property
    def management_endpoint(self) -> str:
        """What the tracking functions post frames to (API Gateway's callback URL, here on loopback)."""
        from sandbox.websocket_front import STAGE

        return f"http://127.0.0.1:{self.port}/{STAGE}"


def start_api(
    penv: control.ProcessEnv,
    api_env: dict[str, str],
    workdir: Path,
    stack: ExitStack,
    *,
    envs: int,
    warm: int,
    port: int = 0,
    tracking_env: dict[str, str] | None = None,
) -> ApiProcess:
    """The API process: the real handlers behind local HTTP and WebSocket fronts."""
    api_log = stack.enter_context((workdir / "logs" / "api.log").open("a"))
    api_proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.api_front"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=api_log,
        text=True,
        env={
            **penv.for_runtime(api_env, sandbox_host=True),
            # One environment per request in flight (Lambda), warmed before the load: at most one per user.
            "SANDBOX_API_ENVS": str(envs),
            "SANDBOX_API_WARM": str(warm),
            "SANDBOX_API_PORT": str(port),
            "SANDBOX_LOG_DIR": str(workdir / "logs"),
            **(
                {"SANDBOX_TRACKING_ENV": json.dumps(penv.for_runtime(tracking_env, sandbox_host=True))}
                if tracking_env is not None
                else {}
            ),
        },
    )
    stack.callback(_stop_process, api_proc)
    assert api_proc.stdout is not None
    first = api_proc.stdout.readline()
    if not first:
        raise SandboxError(f"the API process did not start (see {api_log.name})")
    ports = json.loads(first)
    return ApiProcess(proc=api_proc, port=int(ports["port"]), ws_port=ports.get("ws_port"))


def function_environment(lam: Any, deployment: Deployment, output: str) -> dict[str, str] | None:
    """A deployed function's environment by its stack output, or None if the stack has no such function."""
    try:
        name = deployment.output("-service", output)
    except KeyError:
        return None
    return dict(lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"])


def start_pipeline(
    opts: Options,
    workdir: Path,
    stack: ExitStack,
    progress: Any,
    k: control.Scale,
    api_envs: int,
    *,
    api_warm: int | None = None,
    api_start: bool = True,
) -> Pipeline:
    """Emulators, the real `cdk deploy`, the data-plane mirror, subscriptions and the API process."""
    port = free_port(opts.port)
    endpoint = f"http://localhost:{port}"
    emulator = _emulator(port, workdir / "logs" / "emulator.log")
    stack.callback(_stop_process, emulator)
    # DynamoDB's data plane in a second emulator process: one moto process is bound to one
    # core by the GIL, and the table calls are most of a flash sale's requests.
    data_port = free_port(0)
    data_endpoint = f"http://localhost:{data_port}"
    data_emulator = _emulator(data_port, workdir / "logs" / "emulator-dynamodb.log")
    stack.callback(_stop_process, data_emulator)
    wait_for(endpoint)
    wait_for(data_endpoint)
    progress(f"emulator up on {endpoint}; deploying with the CDK CLI ...")
    chaos_context = opts.chaos.context() if opts.chaos else {}
    context = {
        "compute": opts.compute,
        "retainData": "false",
        **SANDBOX_CONTEXT,
        **chaos_context,
        **(opts.context or {}),
    }
    config = resolve(context)  # what synth will validate and deploy, read the same way
    t_deploy = time.monotonic()
    deployment = deploy(endpoint, context, workdir)
    progress(f"deployed {', '.join(deployment.outputs)} in {time.monotonic() - t_deploy:.0f} s")
    import boto3
    from botocore.config import Config

    # This process's clients talk to this run's emulators; the variables are restored when the run ends
    # (`make compare` runs several sandboxes in one process).
    names = (*aws_env(endpoint), "AWS_ENDPOINT_URL_DYNAMODB")
    saved = {name: os.environ.get(name) for name in names}
    stack.callback(_restore_environ, saved)
    os.environ.update(aws_env(endpoint))
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = data_endpoint
    many = Config(max_pool_connections=128)
    services = ("sqs", "sns", "dynamodb", "lambda", "ecs", "cloudformation")
    clients: dict[str, Any] = {s: boto3.client(s, config=many) for s in services}  # type: ignore[call-overload]
    # The tables as CloudFormation made them (control plane), beside the data plane's "dynamodb".
    clients["dynamodb_control"] = boto3.client("dynamodb", endpoint_url=endpoint)
    mirror_tables(clients["dynamodb_control"], clients["dynamodb"])
    data = list(deployment.outputs[next(n for n in deployment.outputs if n.endswith("-data"))].values())

    def find(prefix: str, needle: str, exclude: str = "\0") -> str:
        return next(v for v in data if v.startswith(prefix) and needle in v and exclude not in v)

    ledger_path = workdir / "payment-ledger.sqlite"
    base = {
        "PATH": os.environ.get("PATH", ""),
        **aws_env(endpoint),
        "AWS_ENDPOINT_URL_DYNAMODB": data_endpoint,
        # Every worker and the API are clients of one simulated processor: one ledger for all.
        "PAYMENT_LEDGER_PATH": str(ledger_path),
    }
    penv = control.ProcessEnv(base=base, scale=k)
    api_cfg = clients["lambda"].get_function_configuration(
        FunctionName=deployment.output("-service", "ApiFunctionName")
    )
    api_env = dict(api_cfg["Environment"]["Variables"])
    api = None
    if api_start:
        warm = api_envs if api_warm is None else api_warm
        tracking_env = function_environment(clients["lambda"], deployment, "TrackingFunctionName")
        api = start_api(penv, api_env, workdir, stack, envs=api_envs, warm=warm, tracking_env=tracking_env)
    return Pipeline(
        deployment=deployment,
        endpoint=endpoint,
        data_endpoint=data_endpoint,
        clients=clients,
        topic_arn=find("arn:aws:sns", "OrderEventsTopic"),
        queue_url=find("https://", "OrdersQueue"),
        queue_arn=find("arn:aws:sqs", "OrdersQueue"),
        dlq_url=find("https://", "OrdersDeadLetterQueue"),
        orders_table=find("", "TablesOrders", "arn:"),
        penv=penv,
        api_env=api_env,
        front=ApiStats(f"http://127.0.0.1:{api.port if api else 0}"),
        config=config,
        ledger_path=ledger_path,
        context=context,
        api=api,
    )


@dataclass
class Workers:
    """One variant's workers as the run sees them."""

    compute: str
    busy: Any  # () -> number of tasks running / environments in use
    backlog_queue: str  # whose depth is the backlog (the orders queue, or the async-invoke queue)
    workload: Workload  # the model of this deployment, in sandbox time
    timing: Timing
    details: Any  # () -> variant-specific summary fields
    pool: control.LambdaPool | None = None
    service: control.EcsService | None = None
    invoker: control.SnsAsyncInvoker | None = None

    def kill(self, count: int) -> int:
        """kill -9 ``count`` busy workers: Lambda environments mid-invoke, or running ECS tasks."""
        if self.pool is not None:
            return self.pool.kill(count)
        assert self.service is not None
        return self.service.kill(count)


def _sandbox_workload(config: AppConfig, compute: str, k: control.Scale, env: dict[str, str]) -> Workload:
    """The model of the deployed config, with the payment latency the processes really run (scaled)."""
    from dataclasses import replace

    latency_ms = int(control.ProcessEnv(base={}, scale=k).for_runtime(env)["PAYMENT_LATENCY_MS"])
    return replace(Workload.from_config(config, compute), payment_latency_s=latency_ms / 1000)


def take_over_mappings(lam: Any, function_name: str) -> list[dict[str, Any]]:
    """The function's event source mappings, disabled: moto would try to run the function; the control plane does."""
    mappings: list[dict[str, Any]] = lam.list_event_source_mappings(FunctionName=function_name)["EventSourceMappings"]
    for m in mappings:
        lam.update_event_source_mapping(UUID=m["UUID"], Enabled=False)
    return mappings


def function_pool(
    p: Pipeline, fn: dict[str, Any], *, max_envs: int, workdir: Path, stack: ExitStack, env: dict[str, str]
) -> control.LambdaPool:
    """Execution environments of a deployed function (its handler, timeout, memory), closed with the run."""
    pool = control.LambdaPool(
        handler=fn["Handler"],
        name=fn["FunctionName"],
        env=p.penv.for_runtime(env, sandbox_host=True),
        # Not time-scaled: the timeout guards CPU work (imports, clients), which the scale does not shorten.
        timeout_s=float(fn["Timeout"]),
        memory_mb=fn["MemorySize"],
        max_envs=max_envs,
        log_dir=workdir / "logs",
    )
    stack.callback(pool.close)
    return pool


def queue_event_source(
    p: Pipeline,
    *,
    queue_url: str,
    queue_arn: str,
    pool: control.LambdaPool,
    mapping: dict[str, Any],
    max_concurrency: int,
    k: control.Scale,
    poll_idle: bool = False,
) -> control.SqsEventSource:
    """A mapping's poller on its queue, with the queue's visibility timeout time-scaled."""
    sqs = p.client("sqs")
    visibility = int(
        sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])["Attributes"][
            "VisibilityTimeout"
        ]
    )
    return control.SqsEventSource(
        sqs=sqs,
        queue_url=queue_url,
        queue_arn=queue_arn,
        pool=pool,
        batch_size=int(mapping["BatchSize"]),
        visibility_s=max(2, int(visibility / k.k)),
        wait_s=1,
        scale=k,
        max_concurrency=max_concurrency,
        poll_idle=poll_idle,
    )


def start_lambda(p: Pipeline, workdir: Path, stack: ExitStack, k: control.Scale, progress: Any) -> Workers:
    lam, sqs = p.client("lambda"), p.client("sqs")
    compute = p.deployment.output("-service", "Compute")
    fn = lam.get_function_configuration(FunctionName=p.deployment.output("-service", "WorkerFunctionName"))
    reserved = lam.get_function_concurrency(FunctionName=fn["FunctionName"]).get("ReservedConcurrentExecutions")
    # Every Lambda variant maps the orders queue: sqs reads it, sns drains what another variant left there.
    [mapping] = take_over_mappings(lam, fn["FunctionName"])
    mapped = int(mapping.get("ScalingConfig", {}).get("MaximumConcurrency", 1000))
    max_envs = int(reserved or 1000)
    if compute != "lambda-sns":
        max_envs = min(max_envs, mapped)
    env = fn["Environment"]["Variables"]
    pool = function_pool(p, fn, max_envs=max_envs, workdir=workdir, stack=stack, env=env)
    backlog_queue = p.queue_url
    if compute != "lambda-sns":
        poller: control.PollerGroup = queue_event_source(
            p,
            queue_url=p.queue_url,
            queue_arn=p.queue_arn,
            pool=pool,
            mapping=mapping,
            max_concurrency=max_envs,
            k=k,
        )
    else:
        drain = queue_event_source(
            p,
            queue_url=p.queue_url,
            queue_arn=p.queue_arn,
            pool=pool,
            mapping=mapping,
            max_concurrency=min(mapped, max_envs),
            k=k,
            poll_idle=True,
        )
        drain.start(min(mapped, max_envs))
        stack.callback(drain.close)
        # SNS puts the function's events on its async-invoke queue (sandbox.cfn_resources); retries, event
        # age and the on-failure destination are the function's EventInvokeConfig, as Lambda reads them.
        invoke_cfg = lam.get_function_event_invoke_config(FunctionName=fn["FunctionName"])
        backlog_queue = sqs.create_queue(QueueName=async_queue_name(fn["FunctionName"]))["QueueUrl"]
        on_failure = invoke_cfg["DestinationConfig"]["OnFailure"]["Destination"]
        poller = control.SnsAsyncInvoker(
            sqs=sqs,
            tap_url=backlog_queue,
            pool=pool,
            retries=int(invoke_cfg["MaximumRetryAttempts"]),
            max_age_s=k.seconds(float(invoke_cfg["MaximumEventAgeInSeconds"])),
            dlq_url=sqs.get_queue_url(QueueName=on_failure.rsplit(":", 1)[1])["QueueUrl"],
            scale=k,
        )
    poller.start(max_envs)
    stack.callback(poller.close)
    invoker = poller if isinstance(poller, control.SnsAsyncInvoker) else None
    progress(f"lambda: up to {max_envs} environments ({compute})")
    return Workers(
        compute=compute,
        busy=lambda: pool.busy,
        backlog_queue=backlog_queue,
        workload=_sandbox_workload(p.config, compute, k, env),
        timing=Timing.sandbox(k.k),
        details=lambda: {
            "cold_starts": len(pool.cold_starts),
            "init_ms": {
                "p50": statistics.median(pool.cold_starts) if pool.cold_starts else 0.0,
                "max": max(pool.cold_starts, default=0.0),
            },
            "concurrency_limit": pool.max_envs,
        },
        pool=pool,
        invoker=invoker,
    )


CONSUMERS = ("TrackingPushFunctionName", "NotificationsFunctionName")


def start_consumers(p: Pipeline, workdir: Path, stack: ExitStack, k: control.Scale, progress: Any) -> list[str]:
    """The other Lambda consumers of the topic (tracking pusher, notifications), each on its own queue:
    environments capped by the function's reserved concurrency, fed by its event source mapping."""
    lam, sqs = p.client("lambda"), p.client("sqs")
    started = []
    for output in CONSUMERS:
        try:
            name = p.deployment.output("-service", output)
        except KeyError:
            continue
        fn = lam.get_function_configuration(FunctionName=name)
        [mapping] = take_over_mappings(lam, name)
        queue_arn = mapping["EventSourceArn"]
        queue_url = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[1])["QueueUrl"]
        reserved = lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions") or 2
        envs = min(int(reserved), 2)  # two cores: two environments per consumer keep up with the sale here
        env = dict(fn["Environment"]["Variables"])
        if p.api is not None:
            env["WEBSOCKET_MANAGEMENT_ENDPOINT"] = p.api.management_endpoint
        pool = function_pool(p, fn, max_envs=envs, workdir=workdir, stack=stack, env=env)
        poller = queue_event_source(
            p, queue_url=queue_url, queue_arn=queue_arn, pool=pool, mapping=mapping, max_concurrency=envs, k=k
        )
        poller.start(envs)
        stack.callback(poller.close)
        started.append(fn["Handler"])
    if started:
        progress(f"consumers: {', '.join(started)}")
    return started


def start_ecs(p: Pipeline, workdir: Path, stack: ExitStack, k: control.Scale, progress: Any, t0: float) -> Workers:
    env, command, stop_timeout = control.task_definition(p.client("ecs"), p.deployment)
    policy = control.ScalingPolicy.from_template(p.deployment.template("-service"))
    service = control.EcsService(
        env=p.penv.for_runtime(env),
        command=command,
        stop_timeout_s=stop_timeout,
        policy=policy,
        sqs=p.client("sqs"),
        queue_url=p.queue_url,
        scale=k,
        log_dir=workdir / "logs",
    )
    service.start()
    stack.callback(service.close)
    progress(
        f"ecs: tasks {policy.min_tasks}..{policy.max_tasks}, target backlog/task {policy.target:g}, "
        f"wake at {policy.wake_depth} visible"
    )
    return Workers(
        compute="ecs",
        busy=service.running,
        backlog_queue=p.queue_url,
        workload=_sandbox_workload(p.config, "ecs", k, env),
        timing=Timing.sandbox(k.k, first_evaluation_s=service.started_at - t0),
        details=lambda: {
            "scaling": {
                "min_tasks": policy.min_tasks,
                "max_tasks": policy.max_tasks,
                "target_backlog_per_task": policy.target,
                "peak_backlog_seen_by_autoscaler": service.peak_backlog_seen,
                "activities": [
                    {"t": round(a[0] - t0, 2), "from": a[1], "to": a[2], "why": a[3]} for a in service.activities
                ],
            }
        },
        service=service,
    )


def run(opts: Options, progress: Any = print) -> dict[str, Any]:
    if shutil.which("node") is None or shutil.which("npx") is None:
        raise SandboxError("node/npx not found: install Node.js 20+ (the CDK CLI runs on it)")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = opts.reports / f"{stamp}-{opts.compute}{opts.label}"
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    k = control.Scale(opts.time_scale)
    users, real_seconds = SCENARIOS[opts.scenario]
    users = opts.users or users
    phase_s = k.seconds(opts.duration_s or real_seconds, 1.0)

    with ExitStack() as stack:
        p = start_pipeline(opts, workdir, stack, progress, k, api_envs=users)
        t0, t0_wall = time.monotonic(), time.time()
        if p.deployment.output("-service", "Compute").startswith("lambda"):
            workers = start_lambda(p, workdir, stack, k, progress)
        else:
            workers = start_ecs(p, workdir, stack, k, progress, t0)
        start_consumers(p, workdir, stack, k, progress)
        sqs = p.client("sqs")

        def backlog() -> tuple[int, int]:
            attrs = sqs.get_queue_attributes(
                QueueUrl=workers.backlog_queue,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            visible, inflight = (
                int(attrs["ApproximateNumberOfMessages"]),
                int(attrs["ApproximateNumberOfMessagesNotVisible"]),
            )
            if workers.pool is not None and workers.backlog_queue != p.queue_url:
                inflight += workers.pool.busy  # async invokes taken off the tap are in flight
            if workers.invoker is not None:
                inflight += workers.invoker.pending  # events waiting for an async retry
            return visible, inflight

        def probe() -> dict[str, float]:
            visible, inflight = backlog()
            dlq = int(
                sqs.get_queue_attributes(QueueUrl=p.dlq_url, AttributeNames=["ApproximateNumberOfMessages"])[
                    "Attributes"
                ]["ApproximateNumberOfMessages"]
            )
            return {
                "visible": visible,
                "inflight": inflight,
                "dlq": dlq,
                "workers": float(workers.busy()),
                "accepted": float(p.front.accepted),
            }

        sampler = Sampler(probe, t0)
        sampler.start()
        stack.callback(sampler.close)
        host = p.front.base

        progress(f"sync checkout: {users} users for {phase_s:.0f} s (time scale {k.k:g}) ...")
        t_sync = time.monotonic() - t0
        sync_stats = run_locust("SyncBuyer", users, phase_s, host, workdir / "logs")
        t_sync_end = time.monotonic() - t0
        progress(f"async checkout: {users} users for {phase_s:.0f} s ...")
        async_start_wall = datetime.now(UTC).isoformat(timespec="milliseconds")
        t_async = time.monotonic() - t0
        accepted_before = p.front.accepted
        monkey = None
        if opts.chaos:
            monkey = ChaosMonkey(
                opts.chaos,
                sqs=sqs,
                sns=p.client("sns"),
                queue_url=p.queue_url if workers.backlog_queue == p.queue_url else None,
                topic_arn=p.topic_arn,
                api_base=host,
                busy=workers.busy,
                kill=workers.kill,
                t0=t0,
            )
            monkey.start()
            stack.callback(monkey.close)
        decline = str(opts.chaos.decline_share) if opts.chaos else "0"
        trackers = None
        if p.ws_url and not opts.chaos:
            trackers = start_trackers(max(1, users // TRACKER_SHARE), phase_s, host, p.ws_url, workdir / "logs")
            stack.callback(_kill, trackers)
        async_stats = run_locust("AsyncBuyer", users, phase_s, host, workdir / "logs", decline_share=decline)
        t_load_end = time.monotonic() - t0
        accepted = p.front.accepted - accepted_before
        end_backlog = sum(backlog())
        progress(f"accepted {accepted} orders; backlog {end_backlog}; draining ...")
        deadline = time.monotonic() + opts.drain_timeout_s
        last = 0.0
        while time.monotonic() < deadline:
            v, i = backlog()
            if v + i == 0:
                break
            if time.monotonic() - last > 5:
                progress(f"  backlog {v + i} ({v} waiting, {i} in flight), workers {workers.busy()}")
                last = time.monotonic()
            time.sleep(0.25)
        t_drained = time.monotonic() - t0
        drained = sum(backlog()) == 0
        time.sleep(0.5)
        sampler.close()
        sessions = finish_trackers(trackers, workdir / "logs") if trackers is not None else None

        orders = _orders(p.client("dynamodb"), p.orders_table)
        # The runbook's first look at the DLQ comes before the accounting reads it (and hides it for a while).
        dlq_by_reason = redrive_show(p) if opts.chaos else {}
        dead, poison_in_dlq, unnamed = _dlq_order_ids(sqs, p.dlq_url)
        details = workers.details()
        peak_workers = max([r["workers"] for r in sampler.rows] + [workers.pool.peak if workers.pool else 0])
        summary = summarize(
            compute=workers.compute,
            opts=opts,
            k=k,
            users=users,
            phase_s=phase_s,
            config=p.config,
            orders=orders,
            async_start_wall=async_start_wall,
            t0_wall=t0_wall,
            timeline={
                "sync_start": t_sync,
                "sync_end": t_sync_end,
                "async_start": t_async,
                "load_end": t_load_end,
                "drained": t_drained,
            },
            rows=sampler.rows,
            accepted=accepted,
            rejected=async_stats["failures"],
            async_stats=async_stats,
            sync_stats=sync_stats,
            dead=dead,
            poison_in_dlq=unnamed,
            end_backlog=end_backlog,
            drained=drained,
            peak_workers=int(peak_workers),
            ledger=_ledger(p.ledger_path),
            workload=workers.workload,
            timing=workers.timing,
            slots=int(p.api_env.get("PAYMENT_SLOTS", "5")),
            sync_latency_s=int(p.api_env.get("PAYMENT_LATENCY_MS", "3000")) / 1000 / k.k,
        )
        summary.update(details)
        if sessions is not None:
            final_seq = {str(o["order_id"]): len(o.get("log") or []) for o in orders}
            summary["tracking"] = metrics.tracking_summary(sessions, final_seq)
        if monkey is not None:
            monkey.close()
            summary["chaos"] = chaos_summary(
                monkey,
                summary,
                sampler.rows,
                poison_in_dlq=poison_in_dlq,
                config=p.config,
                compute=workers.compute,
                invoker=workers.invoker,
            )
            summary["chaos"]["redrive_show"] = dlq_by_reason
        report.write(workdir, summary, sampler.rows)
        return {"summary": summary, "dir": workdir}


def _ledger(path: Path) -> dict[str, int]:
    from orders.adapters.ledger import SqliteLedger, summarize

    if not path.exists():
        return {"charges": 0, "declines": 0, "replays": 0, "double_charges": 0}
    return summarize(SqliteLedger(path).entries()).to_dict()


def summarize(
    *,
    compute: str,
    opts: Options,
    k: control.Scale,
    users: int,
    phase_s: float,
    config: AppConfig,
    orders: list[dict[str, Any]],
    async_start_wall: str,
    t0_wall: float,
    timeline: dict[str, float],
    rows: list[dict[str, float]],
    accepted: int,
    rejected: int,
    async_stats: dict[str, Any],
    sync_stats: dict[str, Any],
    dead: set[str],
    poison_in_dlq: int,
    end_backlog: int,
    drained: bool,
    peak_workers: int,
    ledger: dict[str, int],
    workload: Workload,
    timing: Timing,
    slots: int,
    sync_latency_s: float,
) -> dict[str, Any]:
    """The run's figures, the model's prediction of it from its arrival log, side by side."""
    placed = [o for o in orders if o.get("status") != "REJECTED"]  # REJECTED: the client was told 5xx
    async_orders = [o for o in placed if str(o.get("created_at", "")) >= async_start_wall]
    sync_orders = [o for o in placed if str(o.get("created_at", "")) < async_start_wall]
    lost = [o for o in async_orders if o["status"] not in metrics.TERMINAL and o["order_id"] not in dead]
    t_load_end, t_drained = timeline["load_end"], timeline["drained"]
    drain_s = t_drained - t_load_end if end_backlog else 0.0
    sync_done = [o for o in sync_orders if o["status"] in metrics.TERMINAL]
    sync_rate = metrics.completion_rate(sync_done)
    accept_rate = metrics.rate_between([o["created_at"] for o in async_orders])
    waits = sorted(
        e - s
        for o in async_orders
        if o["status"] == "PAID"
        for s, e in [(metrics.seconds(o["created_at"]), metrics.seconds(o["updated_at"]))]
        if s is not None and e is not None
    )
    # The model sees only the arrival log and the deployed config, never the drain it predicts.
    arrivals = [t - t0_wall for t in (metrics.seconds(o["created_at"]) for o in async_orders) if t is not None]
    predicted = simulate(workload, arrivals, timing, load_end_s=t_load_end) if arrivals else None
    efficiency = metrics.worker_efficiency(
        rows, start=t_load_end, end=t_drained, worker_capacity=workload.worker_capacity_per_s
    )
    first_out = _first_scale_out(rows, timeline["async_start"])
    model: dict[str, Any] = {
        "peak_backlog": predicted.peak_backlog if predicted else 0,
        "backlog_at_load_end": predicted.backlog_at_load_end if predicted else 0,
        "drain_seconds": predicted.drain_seconds if predicted else 0.0,
        "peak_workers": predicted.peak_workers if predicted else 0,
        "first_scale_out_s": (
            predicted.first_scale_out_s - timeline["async_start"]
            if predicted and predicted.first_scale_out_s is not None
            else None
        ),
        "wait_p50_s": predicted.wait_percentile(50) if predicted else 0.0,
        "wait_p99_s": predicted.wait_percentile(99) if predicted else 0.0,
        "worker_capacity_per_s": workload.worker_capacity_per_s,
        "inputs": {
            "arrivals": len(arrivals),
            "workload": workload.__dict__,
            "timing": timing.__dict__,
        },
    }
    summary: dict[str, Any] = {
        "compute": compute,
        "scenario": opts.scenario,
        "time_scale": k.k,
        "users": users,
        "phase_seconds": phase_s,
        "config": context_of(config),
        "accepted": accepted,
        "rejected": rejected,
        "processed": sum(1 for o in async_orders if o["status"] in metrics.TERMINAL),
        "paid": sum(1 for o in async_orders if o["status"] == "PAID"),
        "payment_failed": sum(1 for o in async_orders if o["status"] == "PAYMENT_FAILED"),
        "dead_lettered": len(dead),
        "dlq_messages_without_order": poison_in_dlq,
        "lost": len(lost),
        "charges": ledger["charges"],
        "double_charges": ledger["double_charges"],
        "charge_replays": ledger["replays"],
        "accept_latency_ms": {"p50": async_stats["p50_ms"], "p99": async_stats["p99_ms"]},
        "sync": {
            "orders": len(sync_done),
            "throughput_per_s": sync_rate,
            "throughput_per_s_real": sync_rate / k.k,
            "latency_ms": {"p50": sync_stats["p50_ms"], "p99": sync_stats["p99_ms"]},
            "latency_ms_real": {"p50": sync_stats["p50_ms"] * k.k, "p99": sync_stats["p99_ms"] * k.k},
            # Each API environment pays one order at a time: users in flight / latency (on AWS too).
            "limit_per_s": users / sync_latency_s,
            "one_client_limit_per_s": slots / sync_latency_s,  # the source's single server: 5 slots / latency
        },
        "async_accept_rate_per_s": accept_rate,
        "async_to_sync_ratio_real": accept_rate / (sync_rate / k.k) if sync_rate else None,
        "peak_queue_depth": int(max((r["visible"] for r in rows), default=0)),
        "backlog_at_load_end": end_backlog,
        "drain_seconds": drain_s,
        "drain_seconds_real": drain_s * k.k,
        "drained": drained,
        "max_workers": peak_workers,
        "first_scale_out_s": first_out,
        "wait_s": {
            "p50": waits[len(waits) // 2] if waits else 0.0,
            "p99": waits[min(len(waits) - 1, int(0.99 * len(waits)))] if waits else 0.0,
        },
        "worker_efficiency": efficiency,
        "model": model,
        "arrivals_s": [round(a, 3) for a in sorted(arrivals)],
        "timeline": timeline,
    }
    return summary


def _first_scale_out(rows: list[dict[str, float]], since: float) -> float | None:
    """Seconds from the start of the async load to the first sample with more workers than before it."""
    before = [r["workers"] for r in rows if r["t"] <= since]
    base = before[-1] if before else 0.0
    for r in rows:
        if r["t"] > since and r["workers"] > base:
            return r["t"] - since
    return None


def chaos_summary(
    monkey: ChaosMonkey,
    summary: dict[str, Any],
    rows: list[dict[str, float]],
    *,
    poison_in_dlq: int,
    config: AppConfig,
    compute: str,
    invoker: control.SnsAsyncInvoker | None = None,
) -> dict[str, Any]:
    """What the faults did: kills, poison sent and where it ended, good orders stuck, time to recover."""
    rec = monkey.record
    sent = sum(rec.poison_sent.values())
    # SQS moves a message to the DLQ at the receive after its maxReceiveCount-th visibility expiry; Lambda's
    # async invoke after its retries (~1 and ~2 minutes apart). Both scaled by the run's time scale.
    k = summary["time_scale"]
    landed = None
    if invoker is not None:
        # Async invokes: from each poison event's first attempt (it may wait its turn in the async queue
        # behind the sale's orders, as on AWS) to its dead-lettering, after the retries' delays.
        bound = sum(60.0 * (n + 1) for n in range(config.sns_retry_attempts)) / k + 5.0
        spans = [
            invoker.poison_dead_lettered[h] - first
            for h, first in invoker.poison_first_attempt.items()
            if h in invoker.poison_dead_lettered
        ]
        if spans and len(spans) == len(invoker.poison_first_attempt):
            landed = max(spans)
    else:
        bound = (config.max_receive_count + 1) * max(2.0, config.visibility_timeout_s / k)
    if invoker is None and rec.poison_sent_at is not None:
        good_dead = summary["dead_lettered"]
        for r in rows:
            if r["t"] >= rec.poison_sent_at and r["dlq"] >= sent + good_dead:
                landed = r["t"] - rec.poison_sent_at
                break
    last_fault = rec.last_fault_at
    drained = summary["timeline"]["drained"]
    return {
        "kills": rec.killed,
        "kill_waves": [{"t": round(t, 2), "killed": n} for t, n in rec.kills],
        "poison_sent": sent,
        "poison_sent_to": rec.poison_sent,
        "poison_dead_lettered": poison_in_dlq,
        "poison_in_dlq_after_s": landed,
        "poison_bound_s": bound,
        "good_orders_stuck": summary["lost"],
        "recovery_seconds": drained - last_fault if last_fault is not None else None,
        "payment_failure_rate": config.payment_failure_rate,
        "decline_share": monkey.plan.decline_share,
        "errors": rec.errors,
    }


def redrive_show(p: Pipeline) -> dict[str, int]:
    """What the runbook's first step (``python -m orders.redrive show``) says of this run's DLQ."""
    from orders.redrive import Redrive

    tool = Redrive(
        sqs=p.client("sqs"),
        ddb=p.client("dynamodb"),
        sns=p.client("sns"),
        dlq_url=p.dlq_url,
        queue_url=p.queue_url,
        table=p.orders_table,
        topic_arn=p.topic_arn,
    )
    return dict(tool.show())
