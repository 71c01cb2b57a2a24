"""A local stack that stays up: ``up``, ``down``, ``deploy-local``, ``load`` and the status ``watch`` reads.

``up`` deploys the real stacks onto the emulator once, starts the control plane and keeps it running;
it follows CloudFormation, so a later deploy (``deploy-local`` or the user's own ``npx cdk deploy``
against the printed endpoint) is adopted: new scaling numbers, concurrency, batch size, trigger or
``compute``. The files it shares with the other commands live in the state directory (``.sandbox/``,
or ``SANDBOX_STATE_DIR``): ``stack.json`` (endpoints, names, context), ``env.sh`` (exports for the
AWS CLI and boto3), ``status.json`` (rewritten every second) and ``up.lock`` (held while it runs).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

from sandbox.emulator.api_front import http_routes
from sandbox.emulator.process import Scale, stop_process
from sandbox.emulator.queues import Depth, queue_depth
from sandbox.emulator.websocket_front import connect_authorization
from sandbox.errors import SandboxError
from sandbox.results.report import report_dir
from sandbox.results.tables import md_table
from sandbox.runs.load import LOCUSTFILE
from sandbox.runs.run import ROOT, SCENARIOS, run_locust
from sandbox.stack.deploy import Deployment, aws_env, deploy, live_deployment
from sandbox.stack.probes import read_ledger, read_orders, wait_drained
from sandbox.stack.specs import LambdaSpec, ScalingPolicy, task_definition
from sandbox.stack.topology import Pipeline, function_environment, mirror_tables, run_context, start_api, start_pipeline
from sandbox.stack.workers import Workers, start_consumers, start_ecs, start_lambda, start_schedules
from stacks import outputs

log = logging.getLogger("sandbox")
API_ENVS = 20  # the largest scenario's users: one API environment per request in flight
API_WARM = 2  # started before `up` says ready; more start on demand, one at a time


def state_dir() -> Path:
    return Path(os.environ.get("SANDBOX_STATE_DIR") or ROOT / ".sandbox").resolve()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically, so a reader never sees half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


class UpLock:
    """One live stack per state directory: ``up`` holds an exclusive lock on ``up.lock`` while it runs."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "up.lock"
        self._file: TextIO | None = None

    def acquire(self) -> bool:
        f = self.path.open("a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        self._file = f
        return True

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def held_elsewhere(self) -> bool:
        if not self.acquire():
            return True
        self.release()
        return False


def read_state() -> dict[str, Any] | None:
    """The running stack's ``stack.json`` (with the last deployed context), or None if none is up."""
    directory = state_dir()
    if not UpLock(directory).held_elsewhere():
        return None
    try:
        state = dict(json.loads((directory / "stack.json").read_text()))
        state["context"] = json.loads((directory / "context.json").read_text())
    except (OSError, ValueError):
        return None  # starting: the lock is held, the files are not written yet
    return state


def read_status() -> dict[str, Any] | None:
    try:
        return dict(json.loads((state_dir() / "status.json").read_text()))
    except (OSError, ValueError):
        return None


def require_state() -> dict[str, Any]:
    state = read_state()
    if state is None:
        raise SandboxError("no local stack is up: `make up` starts one")
    return state


@dataclass
class UpOptions:
    compute: str = "lambda"
    context: dict[str, str] = field(default_factory=dict)
    time_scale: float = 2.0
    port: int = 0
    api_port: int = 0
    reports: Path = ROOT / "reports"


class LiveStack:
    """The control plane of a stack that stays up: it follows CloudFormation and adopts each deploy."""

    def __init__(self, p: Pipeline, workdir: Path, k: Scale, progress: Any) -> None:
        self.p, self.workdir, self.k, self.progress = p, workdir, k, progress
        self.workers: Workers | None = None
        self._workers_stack = ExitStack()
        self.fingerprint = p.deployment.fingerprint()
        self._failed = ""
        self._seen = ""
        self.adopted_at = time.time()
        self.generation = 0
        self.changes: deque[dict[str, Any]] = deque(maxlen=30)
        self._lambda_spec: LambdaSpec | None = None
        self._api: tuple[subprocess.Popen[str], dict[str, str]] | None = None
        self._api_stack = ExitStack()
        self._paid: deque[tuple[float, int]] = deque(maxlen=6)

    # ------------------------------------------------------------------ workers
    def note(self, message: str) -> None:
        self.changes.append({"at": time.time(), "message": message})
        self.progress(message)

    def start_workers(self) -> Workers:
        stack = ExitStack()
        compute = self.p.deployment.compute
        if compute.startswith("lambda"):
            workers = start_lambda(self.p, self.workdir, stack, self.k, self.progress)
            self._lambda_spec = LambdaSpec.read(self.p.client("lambda"), self.p.deployment)
        else:
            workers = start_ecs(self.p, self.workdir, stack, self.k, self.progress, time.monotonic())
        self.workers, self._workers_stack = workers, stack
        return workers

    def stop_workers(self, workers: Workers, stack: ExitStack, drain_timeout_s: float = 120.0) -> None:
        """Stop a generation of workers as AWS would: ECS tasks get SIGTERM and finish what they hold; the
        event source mapping stops polling and its batches in flight finish; async invokes already accepted
        (the subscription is gone) are still run before the invoker stops."""
        if workers.invoker is not None:
            sqs = self.p.client("sqs")
            wait_drained(lambda: workers.backlog(sqs), drain_timeout_s)
        stack.close()

    # ------------------------------------------------------------------ following CloudFormation
    def poll(self) -> bool:
        """Adopt the deployed stacks if they changed since the last look; True if they did."""
        deployment = live_deployment(self.p.client("cloudformation"))
        if deployment is None or deployment.fingerprint() in (self.fingerprint, self._failed):
            return False
        # A stack update is many emulator calls: adopt what two looks a poll apart agree on.
        seen, self._seen = self._seen, deployment.fingerprint()
        if seen != self._seen:
            return False
        try:
            self.adopt(deployment)
        except Exception as exc:  # keep running what runs; a later deploy is tried afresh
            self._failed = deployment.fingerprint()
            log.exception("adopting the deployed stacks failed")
            self.note(f"could not adopt the deployed stacks ({type(exc).__name__}: {exc}); still running the last")
            return False
        return True

    def adopt(self, deployment: Deployment) -> None:
        assert self.workers is not None
        deployment.layer_arn = self.p.deployment.layer_arn
        self.p.deployment = deployment
        mirror_tables(self.p.client("dynamodb_control"), self.p.client("dynamodb"))
        compute = deployment.compute
        if compute != self.workers.compute:
            old, old_stack = self.workers, self._workers_stack
            self.note(f"compute: {old.compute} -> {compute}: starting the new workers, draining the old")
            self.start_workers()
            t = time.monotonic()
            self.stop_workers(old, old_stack)
            self.note(f"compute: {old.compute} workers stopped after {time.monotonic() - t:.1f} s")
        elif self.workers.service is not None:
            service = self.workers.service
            policy = ScalingPolicy.from_template(deployment.service_template())
            for change in service.update_policy(policy):
                self.note(f"target tracking: {change}")
            env, command, stop_timeout = task_definition(self.p.client("ecs"), deployment)
            if service.redeploy(self.p.penv.for_runtime(env), command, stop_timeout):
                self.note("task definition changed: running tasks replaced (SIGTERM, then new tasks)")
        else:
            assert self._lambda_spec is not None
            changed = self._lambda_spec.changes(LambdaSpec.read(self.p.client("lambda"), deployment))
            if changed:
                old, old_stack = self.workers, self._workers_stack
                self.note(f"lambda: {', '.join(changed)}: new environments take over")
                self.start_workers()
                self.stop_workers(old, old_stack)
        self._restart_api_if_changed()
        self.fingerprint = deployment.fingerprint()
        self.adopted_at = time.time()
        self.generation += 1

    def start_api(self, port: int) -> int:
        env = self._api_environment()
        tracking_env = function_environment(self.p.client("lambda"), self.p.deployment, outputs.TRACKING_FUNCTION_NAME)
        api = start_api(
            self.p.penv,
            env,
            self.workdir,
            self._api_stack,
            envs=API_ENVS,
            warm=API_WARM,
            port=port,
            tracking_env=tracking_env,
            routes=http_routes(self.p.deployment.service_template()),
            connect_auth=connect_authorization(self.p.deployment.service_template()),
            jwt_key=self.p.jwt_key,
        )
        self.p.api = api
        self._api = (api.proc, env)
        return api.port

    def _api_environment(self) -> dict[str, str]:
        """The API function's environment, and the routes the stack deploys (a change of either restarts it)."""
        fn = self.p.client("lambda").get_function_configuration(
            FunctionName=self.p.deployment.service(outputs.API_FUNCTION_NAME)
        )
        template = self.p.deployment.service_template()
        routes = json.dumps(http_routes(template))
        return {
            **fn["Environment"]["Variables"],
            "SANDBOX_API_ROUTE_KEYS": routes,
            "SANDBOX_TRACKING_CONNECT_AUTH": connect_authorization(template),
        }

    def _restart_api_if_changed(self) -> None:
        if self._api is None:
            return
        env = self._api_environment()
        if env == self._api[1]:
            return
        proc, _ = self._api
        stop_process(proc)
        self.start_api(self.p.front.port)
        self.note("API function configuration changed: API environments replaced")

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        assert self.workers is not None
        sqs, w = self.p.client("sqs"), self.workers
        backlog = w.backlog(sqs)
        charges = read_ledger(self.p.ledger_path)
        now = time.time()
        self._paid.append((now, charges["charges"]))
        (t_a, c_a), (t_b, c_b) = self._paid[0], self._paid[-1]
        params: dict[str, Any]
        if w.service is not None:
            pol = w.service.policy
            params = {key: getattr(pol, f) for f, key in ScalingPolicy.KEYS.items()}
            params["desiredTasks"] = w.service.desired
        else:
            params = self._lambda_spec.settings() if self._lambda_spec else {}
        return {
            "at": now,
            "pid": os.getpid(),
            "compute": w.compute,
            "time_scale": self.k.k,
            "visible": backlog.visible,
            "in_flight": backlog.in_flight,
            "dlq": queue_depth(sqs, self.p.dlq_url).visible,
            "workers": w.busy(),
            "charges": charges["charges"],
            "double_charges": charges["double_charges"],
            "paid_per_s": (c_b - c_a) / (t_b - t_a) if t_b > t_a else 0.0,
            "accepted": self.p.front.accepted,
            "params": params,
            "generation": self.generation,
            "fingerprint": self.fingerprint,
            "adopted_at": self.adopted_at,
            "changes": list(self.changes),
            "activities": (
                [{"from": a[1], "to": a[2], "why": a[3]} for a in w.service.activities[-10:]] if w.service else []
            ),
        }

    def close(self) -> None:
        if self.workers is not None:
            self._workers_stack.close()
        self._api_stack.close()


def env_exports(state: dict[str, Any]) -> str:
    lines = [f"export {k}={v}" for k, v in state["env"].items()]
    lines += [f"export {k}={v}" for k, v in state["names"].items()]
    return "\n".join(lines) + "\n"


def up(opts: UpOptions, progress: Any = print) -> int:
    """Deploy and run the stack until interrupted (Ctrl-C, SIGTERM or ``down``)."""
    directory = state_dir()
    lock = UpLock(directory)
    if not lock.acquire():
        state = read_state()
        where = f" (pid {state['pid']}, API {state['api_url']})" if state else ""
        raise SandboxError(f"a local stack is already up{where}: `make down` stops it")
    started = time.monotonic()
    workdir = report_dir(opts.reports.resolve(), f"live-{opts.compute}")
    k = Scale(opts.time_scale)
    try:
        with ExitStack() as stack:
            for name in ("stack.json", "status.json", "context.json", "env.sh"):
                stack.callback((directory / name).unlink, missing_ok=True)
            p = start_pipeline(
                context=run_context(opts.compute, opts.context),
                workdir=workdir,
                stack=stack,
                progress=progress,
                k=k,
                api_envs=API_ENVS,
                port=opts.port,
                api_start=False,
            )
            live = LiveStack(p, workdir, k, progress)
            stack.callback(live.close)
            api_port = live.start_api(opts.api_port)
            p.front = type(p.front)(f"http://127.0.0.1:{api_port}")
            live.start_workers()
            start_consumers(p, workdir, stack, k, progress)
            start_schedules(p, workdir, stack, k, progress)
            state = _stack_state(p, workdir, k)
            _write_json(directory / "context.json", p.context)
            _write_json(directory / "status.json", live.status())
            (directory / "env.sh").write_text(env_exports(state))
            ready_s = time.monotonic() - started
            state["ready_seconds"] = ready_s
            _write_json(directory / "stack.json", state)  # last: its presence is what `read_state` waits for
            progress(f"ready in {ready_s:.1f} s ({p.deployment.compute})")
            print(banner(state, directory), flush=True)
            _follow(live, directory)
    except KeyboardInterrupt:
        progress("stopping: every process this stack started is being stopped")
        return 0
    finally:
        lock.release()


def _stack_state(p: Pipeline, workdir: Path, k: Scale) -> dict[str, Any]:
    """What ``.sandbox/stack.json`` holds: endpoints, the shell's environment, resource names, the ledger."""
    names = {
        "ORDER_EVENTS_TOPIC_ARN": p.topic_arn,
        "ORDERS_QUEUE_URL": p.queue_url,
        "ORDERS_DLQ_URL": p.dlq_url,
        "ORDERS_TABLE_NAME": p.orders_table,
        "CATALOG_TABLE_NAME": p.catalog_table,
        "STOCK_SHARDS": str(p.config.stock_shards),
        "API_URL": p.front.base,
        **({"TRACKING_URL": p.ws_url} if p.ws_url else {}),
    }
    state = {
        "pid": os.getpid(),
        "api_url": p.front.base,
        "endpoint": p.endpoint,
        "dynamodb_endpoint": p.data_endpoint,
        "env": {
            # What a user's shell needs; the sandbox's own processes also hide any local AWS config.
            **{
                k_: v
                for k_, v in aws_env(p.endpoint).items()
                if k_ not in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
            },
            "AWS_ENDPOINT_URL_DYNAMODB": p.data_endpoint,
        },
        "names": names,
        "layer_arn": p.deployment.layer_arn,
        "workdir": str(workdir),
        "ledger": str(p.ledger_path),
        "jwt_key": str(p.jwt_key),  # `python -m sandbox token CUSTOMER` signs with it
        "time_scale": k.k,
        "started_at": time.time(),
    }
    return state


def _follow(live: LiveStack, directory: Path) -> NoReturn:
    """Until interrupted: adopt what CloudFormation deployed, write the status, once a second."""
    while True:
        try:
            live.poll()
        except Exception:
            log.exception("following the deployed stacks failed")
        try:
            _write_json(directory / "status.json", live.status())
        except Exception:
            log.exception("status failed")
        time.sleep(1.0)


def banner(state: dict[str, Any], directory: Path) -> str:
    from sandbox.emulator.tokens import mint

    rel = os.path.relpath(directory)
    token = mint(Path(state["jwt_key"]), "demo-customer") if state.get("jwt_key") else ""
    return "\n".join(
        [
            "",
            f"  API            {state['api_url']}   (POST /orders, GET /orders/{{id}}, GET /catalog)",
            *(
                [
                    "  sign in        a demo customer's token (1 h; `python -m sandbox token CUSTOMER` for others):",
                    f"                 curl -H 'Authorization: Bearer {token}' {state['api_url']}/orders/ID",
                ]
                if token
                else []
            ),
            f"  AWS endpoint   {state['endpoint']}   (DynamoDB: {state['dynamodb_endpoint']})",
            f"  environment    source {rel}/env.sh",
            *(f"  {k:<14} {v}" for k, v in state["names"].items() if k != "API_URL"),
            "",
            "  make watch | make load SCENARIO=flash | make deploy-local CDK_ARGS='-c key=value' | make down",
            "  Ctrl-C stops it.",
            "",
        ]
    )


def down(timeout_s: float = 180.0, progress: Any = print) -> int:
    directory = state_dir()
    lock = UpLock(directory)
    if not lock.held_elsewhere():
        progress("no local stack is up")
        return 0
    state = read_state()
    if state is None:
        raise SandboxError("a local stack is starting; stop it with Ctrl-C in its terminal, or retry when it is up")
    pid = int(state["pid"])
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    while lock.held_elsewhere():
        if time.monotonic() - started > timeout_s:
            os.kill(pid, signal.SIGKILL)
            raise SandboxError(f"the stack (pid {pid}) did not stop within {timeout_s:.0f} s; killed")
        time.sleep(0.2)
    progress(f"stopped the local stack (pid {pid}) in {time.monotonic() - started:.1f} s")
    return 0


def _poller_mode_context(carried: dict[str, str], overrides: dict[str, str], progress: Any) -> dict[str, str]:
    """The carried context with ``overrides``; a change of poller mode brings that mode's sandbox defaults
    (``topology.SANDBOX_PROVISIONED`` or ``SANDBOX_CONTEXT``) for the keys the user does not set."""
    from sandbox.stack.topology import SANDBOX_CONTEXT, SANDBOX_PROVISIONED

    was = carried.get("lambdaPollerMode", "standard")
    leaves_sqs = overrides.get("compute") == "ecs" or overrides.get("lambdaTrigger") == "sns"
    if was == "provisioned" and leaves_sqs and "lambdaPollerMode" not in overrides:
        overrides = {**overrides, "lambdaPollerMode": "standard"}
        progress("the carried lambdaPollerMode=provisioned is dropped (it sets the SQS trigger's pollers)")
    context = {**carried, **overrides}
    now = context.get("lambdaPollerMode", "standard")
    if now != was:
        defaults = SANDBOX_PROVISIONED if now == "provisioned" else SANDBOX_CONTEXT
        context.update({k: v for k, v in defaults.items() if k not in overrides})
    return context


def _clear_other_mode(state: dict[str, Any], cfg: Any, progress: Any) -> None:
    """The step the preflight names before a poller-mode switch (ops/preflight.py), done on the local stack:
    the emulator, like Lambda, refuses an update that leaves the other mode's setting on the mapping."""
    import boto3

    from ops.preflight import CLI_OPTION, deployed_worker_mappings, other_mode_left

    if cfg.compute != "lambda":
        return

    class LocalAccount:  # what the preflight reads, on the local stack's endpoint
        client = staticmethod(lambda service: boto3.client(service, **_client_kwargs(state)))

    account = LocalAccount()
    for mapping in deployed_worker_mappings(account, f"{cfg.stack_prefix}{outputs.SERVICE_STACK}"):
        left = other_mode_left(mapping, cfg)
        if left is not None:
            account.client("lambda").update_event_source_mapping(UUID=mapping["UUID"], **{left[0]: {}})
            option = CLI_OPTION[left[0]]
            progress(f"cleared the mapping's {left[1]} first (aws lambda update-event-source-mapping {option} '{{}}')")


def deploy_local(overrides: dict[str, str], progress: Any = print, timeout_s: float = 120.0) -> dict[str, Any]:
    """``cdk deploy`` onto the running stack with its context plus ``overrides``; waits for the control plane."""
    import boto3

    from planner.config import resolve

    state = require_state()
    carried = dict(state["context"])
    if overrides.get("compute") == "ecs" and "lambdaTrigger" not in overrides and carried.pop("lambdaTrigger", None):
        progress("compute=ecs: the carried lambdaTrigger is dropped (ECS workers always read the queue)")
    context = _poller_mode_context(carried, overrides, progress)
    cfg = resolve(context)  # a bad value stops here with synth's one line, before the CLI runs
    _clear_other_mode(state, cfg, progress)
    directory = state_dir()
    workdir = report_dir(Path(state["workdir"]), "deploy")
    changed = {k: v for k, v in overrides.items() if state["context"].get(k) != v}
    progress(f"deploying to the local stack: {', '.join(f'{k}={v}' for k, v in changed.items()) or 'no changes'}")
    t0 = time.time()
    deploy(state["endpoint"], context, workdir, layer_arn=state["layer_arn"])
    deployed_at = time.time()
    _write_json(directory / "context.json", context)
    cf = boto3.client("cloudformation", **_client_kwargs(state))
    expected = live_deployment(cf)
    assert expected is not None
    fingerprint = expected.fingerprint()
    while True:
        status = read_status()
        if status and status.get("fingerprint") == fingerprint:
            break
        if time.time() - deployed_at > timeout_s:
            raise SandboxError(f"the control plane did not adopt the deploy within {timeout_s:.0f} s")
        time.sleep(0.2)
    # The control plane follows CloudFormation, not the CLI: it often adopts the stacks before the CLI has
    # written its outputs and returned (a negative figure).
    adopted_after = float(status["adopted_at"]) - deployed_at
    news = [c["message"] for c in status.get("changes", []) if c["at"] >= t0]
    for message in news:
        progress(f"  control plane: {message}")
    when = (
        f"{adopted_after:.1f} s after the CLI returned"
        if adopted_after >= 0
        else (f"{-adopted_after:.1f} s before the CLI returned")
    )
    progress(
        f"deployed in {deployed_at - t0:.1f} s; the control plane adopted it "
        f"{float(status['adopted_at']) - t0:.1f} s after the deploy started ({when})"
    )
    return {
        "deploy_seconds": deployed_at - t0,
        "adopted_seconds_from_deploy_start": float(status["adopted_at"]) - t0,
        "adopted_after_cli_seconds": adopted_after,
        "changes": news,
    }


def _client_kwargs(state: dict[str, Any]) -> dict[str, Any]:
    env = state["env"]
    return {
        "endpoint_url": state["endpoint"],
        "region_name": env["AWS_DEFAULT_REGION"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
    }


def load(scenario: str, *, web: bool = False, web_port: int = 8089, progress: Any = print) -> dict[str, Any]:
    """Locust against the running stack: headless with a report of its own, or Locust's web UI."""
    state = require_state()
    users, real_s = SCENARIOS[scenario]
    k = Scale(float(state["time_scale"]))
    seconds = k.seconds(real_s, 1.0)
    if web:
        _locust_web_ui(state["api_url"], users, web_port, progress)
        return {}
    out = report_dir(Path(state["workdir"]).parent, f"load-{scenario}")  # beside the stack's own folder
    started_wall = datetime.now(UTC).isoformat(timespec="milliseconds")
    before = read_status() or {}
    progress(f"{scenario}: {users} users for {seconds:.0f} s against {state['api_url']} ...")
    stats = run_locust("AsyncBuyer", users, seconds, state["api_url"], out / "logs")
    t_end = time.monotonic()
    progress("load over; waiting for the backlog to drain ...")
    drained = wait_drained(_status_backlog, 300.0)
    drain_s = time.monotonic() - t_end
    orders = _orders_since(state, started_wall)
    by_status: dict[str, int] = {}
    for o in orders:
        by_status[str(o["status"])] = by_status.get(str(o["status"]), 0) + 1
    after = read_status() or {}
    summary = {
        "scenario": scenario,
        "users": users,
        "seconds": seconds,
        "time_scale": k.k,
        "compute": after.get("compute"),
        "params": after.get("params"),
        "requests": stats["requests"],
        "failures": stats["failures"],
        "accept_latency_ms": {"p50": stats["p50_ms"], "p99": stats["p99_ms"]},
        "requests_per_s": stats["rps"],
        "orders": len(orders),
        "orders_by_status": by_status,
        "drained": drained,
        "drain_seconds": drain_s,
        "charges": after.get("charges", 0) - before.get("charges", 0),
        "double_charges": after.get("double_charges", 0),
    }
    _write_json(out / "summary.json", summary)
    table = md_table(["figure", "value"], [[key, value] for key, value in summary.items()])
    (out / "report.md").write_text("# Load on the live stack\n\n" + "\n".join(table) + "\n")
    progress(
        f"{summary['orders']} orders ({by_status}); accept p50 {stats['p50_ms']:.0f} ms, "
        f"p99 {stats['p99_ms']:.0f} ms; drained {'in ' + format(drain_s, '.1f') + ' s' if drained else 'NO'}; "
        f"double charges {summary['double_charges']}"
    )
    progress(f"report: {os.path.relpath(out)}/report.md")
    return summary


def _status_backlog() -> Depth:
    """The running stack's backlog as its control plane last wrote it (``status.json``)."""
    status = read_status() or {}
    if not status:
        return Depth(visible=1, in_flight=0)  # not written yet: not known to be drained
    return Depth(visible=int(status["visible"]), in_flight=int(status["in_flight"]))


def _orders_since(state: dict[str, Any], started_wall: str) -> list[dict[str, Any]]:
    import boto3

    ddb = boto3.client("dynamodb", **{**_client_kwargs(state), "endpoint_url": state["dynamodb_endpoint"]})
    orders = read_orders(ddb, state["names"]["ORDERS_TABLE_NAME"])
    return [o for o in orders if str(o["created_at"]) >= started_wall]


def _locust_web_ui(api_url: str, users: int, web_port: int, progress: Any) -> None:
    progress(f"Locust's web UI on http://127.0.0.1:{web_port} (Ctrl-C stops it)")
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", api_url]
    command += ["--web-host", "127.0.0.1", "--web-port", str(web_port), "-u", str(users), "-r", str(users)]
    subprocess.run([*command, "AsyncBuyer", "SyncBuyer"], cwd=ROOT, check=False)
