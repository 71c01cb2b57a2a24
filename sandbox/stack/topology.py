"""The deployed pipeline read once: emulators, `cdk deploy`, endpoints, clients, names and the API process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner.config import AppConfig, resolve
from sandbox.emulator import tokens
from sandbox.emulator.api_front import http_routes
from sandbox.emulator.process import ROOT, ProcessEnv, Scale, free_port, stop_process
from sandbox.emulator.websocket_front import connect_authorization
from sandbox.errors import SandboxError
from sandbox.stack.deploy import Deployment, aws_env, deploy, wait_for
from stacks import outputs

# What 2 cores can emulate: every Lambda environment and ECS task is a real local process.
SANDBOX_CONTEXT = {"reservedConcurrency": "10", "maxConcurrency": "10", "maxTasks": "10"}
# With provisioned pollers: the smallest mapping AWS allows (2 pollers of 10 invokes), all of it reserved as the
# config requires, and no maximum concurrency beside it (AWS refuses both).
SANDBOX_PROVISIONED = {
    "reservedConcurrency": "20",
    "maxConcurrency": "0",
    "lambdaMinPollers": "2",
    "lambdaMaxPollers": "2",
}
# Lambda Managed Instances: 3 environments of 2 requests (Lambda's floor of 3), growing to 5 as the planner lets
# them (doubling at most every 5 minutes, time-scaled), the mapping's maximum at what 5 of them run.
SANDBOX_MANAGED_INSTANCES = {
    "lmiMinEnvironments": "3",
    "lmiMaxEnvironments": "5",
    "lmiPerEnvironmentConcurrency": "2",
    "maxConcurrency": "10",
}


class ApiStats:
    """Reads the API process's counters (responses by route and status, orders accepted)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.port = int(base.rsplit(":", 1)[1])

    def stats(self) -> dict[str, Any]:
        import urllib.request

        from sandbox.emulator.api_front import STATS_PATH

        with urllib.request.urlopen(self.base + STATS_PATH, timeout=5) as resp:
            return dict(json.loads(resp.read()))

    @property
    def accepted(self) -> int:
        return int(self.stats()["accepted"])


def start_emulator(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """A moto server child process; it exits when its stdin (our end of the pipe) closes."""
    return subprocess.Popen(
        [sys.executable, "-m", "sandbox.emulator.server", "--port", str(port)],
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
    catalog_table: str
    jwt_key: Path  # the sandbox issuer's key: tokens for shoppers, the JWT authorizer's check
    penv: ProcessEnv
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


@dataclass
class ApiProcess:
    proc: subprocess.Popen[str]
    port: int
    ws_port: int | None  # the WebSocket (tracking) API, if the stack has one

    @property
    def management_endpoint(self) -> str:
        """What the tracking functions post frames to (API Gateway's callback URL, here on loopback)."""
        from sandbox.emulator.websocket_front import STAGE

        return f"http://127.0.0.1:{self.port}/{STAGE}"


def start_api(
    penv: ProcessEnv,
    api_env: dict[str, str],
    workdir: Path,
    stack: ExitStack,
    *,
    envs: int,
    warm: int,
    port: int = 0,
    tracking_env: dict[str, str] | None = None,
    routes: dict[str, str] | None = None,
    connect_auth: str = "NONE",
    jwt_key: Path | None = None,
) -> ApiProcess:
    """The API process: the real handlers behind local HTTP and WebSocket fronts."""
    api_log = stack.enter_context((workdir / "logs" / "api.log").open("a"))
    api_proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.emulator.api_front"],
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
            **({"SANDBOX_API_ROUTES": json.dumps(routes)} if routes is not None else {}),
            "SANDBOX_TRACKING_CONNECT_AUTH": connect_auth,
            **({"SANDBOX_JWT_KEY": str(jwt_key)} if jwt_key is not None else {}),
            **(
                {"SANDBOX_TRACKING_ENV": json.dumps(penv.for_runtime(tracking_env, sandbox_host=True))}
                if tracking_env is not None
                else {}
            ),
        },
    )
    stack.callback(stop_process, api_proc)
    assert api_proc.stdout is not None
    first = api_proc.stdout.readline()
    if not first:
        raise SandboxError(f"the API process did not start (see {api_log.name})")
    ports = json.loads(first)
    return ApiProcess(proc=api_proc, port=int(ports["port"]), ws_port=ports.get("ws_port"))


def function_environment(lam: Any, deployment: Deployment, output: str) -> dict[str, str] | None:
    """A deployed function's environment by its stack output, or None if the stack has no such function."""
    try:
        name = deployment.service(output)
    except KeyError:
        return None
    return dict(lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"])


def run_context(compute: str, *layers: Mapping[str, str] | None) -> dict[str, str]:
    """What a sandbox run deploys: the variant, disposable data and what two cores emulate, then each of
    ``layers`` on top (a fault plan's context, the user's ``-c`` overrides)."""
    # Signed-in shoppers: the order routes take tokens of the sandbox's own issuer (sandbox/emulator/tokens.py).
    context = {"compute": compute, "retainData": "false", **SANDBOX_CONTEXT, **tokens.CONTEXT}
    for layer in layers:
        context.update(layer or {})
    given = {key for layer in layers for key in (layer or {})}
    if context.get("lambdaPollerMode") == "provisioned":
        context.update({k: v for k, v in SANDBOX_PROVISIONED.items() if k not in given})
    if compute == "lambda-mi":
        context.update({k: v for k, v in SANDBOX_MANAGED_INSTANCES.items() if k not in given})
    return context


@dataclass(frozen=True)
class Emulators:
    endpoint: str  # every service but DynamoDB's data plane
    data_endpoint: str  # DynamoDB's data plane


def start_emulators(workdir: Path, stack: ExitStack, port: int = 0) -> Emulators:
    """Two moto servers: DynamoDB's data plane in its own process, since one moto process is bound to one
    core by the GIL and the table calls are most of a flash sale's requests."""
    ports = free_port(port), free_port(0)
    for p, name in zip(ports, ("emulator", "emulator-dynamodb"), strict=True):
        stack.callback(stop_process, start_emulator(p, workdir / "logs" / f"{name}.log"))
    em = Emulators(f"http://localhost:{ports[0]}", f"http://localhost:{ports[1]}")
    wait_for(em.endpoint)
    wait_for(em.data_endpoint)
    return em


def connect(em: Emulators, stack: ExitStack) -> dict[str, Any]:
    """This process's clients of this run's emulators. The environment variables are restored when the run
    ends (`make compare` runs several sandboxes in one process)."""
    import boto3
    from botocore.config import Config

    names = (*aws_env(em.endpoint), "AWS_ENDPOINT_URL_DYNAMODB")
    stack.callback(_restore_environ, {name: os.environ.get(name) for name in names})
    os.environ.update(aws_env(em.endpoint))
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = em.data_endpoint
    many = Config(max_pool_connections=128)
    services = ("sqs", "sns", "dynamodb", "lambda", "ecs", "cloudformation")
    clients: dict[str, Any] = {s: boto3.client(s, config=many) for s in services}  # type: ignore[call-overload]
    # The tables as CloudFormation made them (control plane), beside the data plane's "dynamodb".
    clients["dynamodb_control"] = boto3.client("dynamodb", endpoint_url=em.endpoint)
    return clients


def outage_file(ledger_path: Path) -> Path:
    """Where the fault harness declares a processor outage (every client process reads it)."""
    return ledger_path.with_name("payment-outage")


def process_env(em: Emulators, ledger_path: Path, k: Scale) -> ProcessEnv:
    base = {
        "PATH": os.environ.get("PATH", ""),
        **aws_env(em.endpoint),
        "AWS_ENDPOINT_URL_DYNAMODB": em.data_endpoint,
        # Every worker and the API are clients of one simulated processor: one ledger for all.
        "PAYMENT_LEDGER_PATH": str(ledger_path),
        "PAYMENT_OUTAGE_FILE": str(outage_file(ledger_path)),
    }
    return ProcessEnv(base=base, scale=k)


DEFAULT_CATALOG = ROOT / "sandbox" / "catalogs" / "flash-sale.json"  # a small sale with one scarce SKU


def load_catalog(ddb: Any, table: str, path: Path, *, shards: int) -> None:
    """The sale's products and stock, loaded by the loader `make catalog` runs (orders.catalog)."""
    from orders.adapters.catalog import load
    from orders.domain.catalog import CatalogFileError, parse_catalog

    try:
        rows = parse_catalog(path.read_bytes(), shards=shards)
    except (OSError, CatalogFileError) as exc:
        raise SandboxError(f"--catalog {path}: {exc}") from None
    load(ddb, table, rows)


def start_pipeline(
    *,
    context: dict[str, str],
    workdir: Path,
    stack: ExitStack,
    progress: Any,
    k: Scale,
    api_envs: int,
    port: int = 0,
    api_warm: int | None = None,
    api_start: bool = True,
    catalog: Path | None = DEFAULT_CATALOG,
) -> Pipeline:
    """Emulators, the real `cdk deploy` of ``context``, the data-plane mirror, the sale's ``catalog``
    (loaded as `make catalog` does, before any order) and the API process."""
    em = start_emulators(workdir, stack, port)
    progress(f"emulator up on {em.endpoint}; deploying with the CDK CLI ...")
    config = resolve(context)  # what synth will validate and deploy, read the same way
    t_deploy = time.monotonic()
    deployment = deploy(em.endpoint, context, workdir)
    progress(f"deployed {', '.join(deployment.outputs)} in {time.monotonic() - t_deploy:.0f} s")
    clients = connect(em, stack)
    mirror_tables(clients["dynamodb_control"], clients["dynamodb"])
    catalog_table = deployment.data(outputs.CATALOG_TABLE_NAME)
    if catalog is not None:
        load_catalog(clients["dynamodb"], catalog_table, catalog, shards=config.stock_shards)
    ledger_path = workdir / "payment-ledger.sqlite"
    jwt_key = tokens.create_key(workdir)
    os.environ["SANDBOX_JWT_KEY"] = str(jwt_key)  # what this run's Locust shoppers sign in with
    penv = process_env(em, ledger_path, k)
    api_env = function_environment(clients["lambda"], deployment, outputs.API_FUNCTION_NAME) or {}
    api = None
    if api_start:
        warm = api_envs if api_warm is None else api_warm
        tracking_env = function_environment(clients["lambda"], deployment, outputs.TRACKING_FUNCTION_NAME)
        api = start_api(
            penv,
            api_env,
            workdir,
            stack,
            envs=api_envs,
            warm=warm,
            tracking_env=tracking_env,
            routes=http_routes(deployment.service_template()),
            connect_auth=connect_authorization(deployment.service_template()),
            jwt_key=jwt_key,
        )
    queue_url = deployment.data(outputs.ORDERS_QUEUE_URL)
    queue_arn = clients["sqs"].get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return Pipeline(
        deployment=deployment,
        endpoint=em.endpoint,
        data_endpoint=em.data_endpoint,
        clients=clients,
        topic_arn=deployment.data(outputs.ORDER_EVENTS_TOPIC_ARN),
        queue_url=queue_url,
        queue_arn=queue_arn["Attributes"]["QueueArn"],
        dlq_url=deployment.data(outputs.ORDERS_DLQ_URL),
        orders_table=deployment.data(outputs.ORDERS_TABLE_NAME),
        catalog_table=catalog_table,
        jwt_key=jwt_key,
        penv=penv,
        api_env=api_env,
        front=ApiStats(f"http://127.0.0.1:{api.port if api else 0}"),
        config=config,
        ledger_path=ledger_path,
        context=context,
        api=api,
    )
