"""``python -m sandbox``: deploy the real stacks onto a local AWS and run a flash sale."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

from orders.cli import OneLineParser
from planner.config import parse_context_args
from sandbox.deploy import DeployError

LIVE_COMMANDS = ("up", "down", "deploy-local", "load", "watch", "context")


def live_main(argv: list[str]) -> int:
    """``python -m sandbox up|down|deploy-local|load|watch``: a local stack that stays up."""
    parser = OneLineParser(prog="python -m sandbox", description=live_main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    up = sub.add_parser("up", help="deploy and run the stack until Ctrl-C or `down`")
    up.add_argument("--compute", choices=["lambda", "ecs"], default="lambda")
    up.add_argument("--time-scale", type=float, default=2.0, help="make waits this many times shorter (default 2)")
    up.add_argument("--port", type=int, default=0, help="emulator port on 127.0.0.1 (default: a free one)")
    up.add_argument("--api-port", type=int, default=0, help="API port on 127.0.0.1 (default: a free one)")
    up.add_argument("--reports", type=Path, default=Path("reports"))
    sub.add_parser("down", help="stop the running stack and every process it started")
    dl = sub.add_parser("deploy-local", help="cdk deploy onto the running stack (its context plus -c overrides)")
    dl.add_argument("--compute", choices=["lambda", "ecs"], help="switch the workers (default: keep)")
    load = sub.add_parser("load", help="Locust against the running stack")
    load.add_argument("--scenario", choices=["normal", "flash", "source"], default="flash")
    load.add_argument("--web", action="store_true", help="Locust's web UI on 127.0.0.1 instead of a headless run")
    load.add_argument("--web-port", type=int, default=8089)
    watch = sub.add_parser("watch", help="the running stack, refreshed each second")
    watch.add_argument("--once", action="store_true", help="print one frame and exit")
    sub.add_parser("context", help="the running stack's context as -c arguments, for your own `npx cdk deploy`")
    for p in (up, dl):
        p.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE", help="CDK context")
    args = parser.parse_args(argv)
    context: dict[str, str] = {}
    if args.command in ("up", "deploy-local"):
        try:
            context = parse_context_args(args.context)
        except ValueError as exc:
            parser.error(str(exc))
    if args.command == "up" and args.time_scale < 1:
        parser.error("--time-scale must be >= 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from planner.config import ConfigError
    from sandbox import live
    from sandbox.run import SandboxError

    say = lambda msg: print(f"[sandbox] {msg}", flush=True)  # noqa: E731
    try:
        if args.command == "up":
            signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
            opts = live.UpOptions(
                compute=args.compute,
                context=context,
                time_scale=args.time_scale,
                port=args.port,
                api_port=args.api_port,
                reports=args.reports,
            )
            return live.up(opts, progress=say)
        if args.command == "down":
            return live.down(progress=say)
        if args.command == "deploy-local":
            if args.compute:
                context["compute"] = args.compute
            live.deploy_local(context, progress=say)
            return 0
        if args.command == "load":
            live.load(args.scenario, web=args.web, web_port=args.web_port, progress=say)
            return 0
        if args.command == "context":
            state = live.require_state()
            pairs = {**state["context"], "powertoolsLayerArn": state["layer_arn"]}
            print(" ".join(f"-c {k}={v}" for k, v in pairs.items()))
            return 0
        from sandbox.watch import watch as run_watch

        return run_watch(once=args.once)
    except (SandboxError, DeployError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in LIVE_COMMANDS:
        return live_main(argv)
    parser = OneLineParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--compute", choices=["lambda", "ecs"], default="lambda")
    parser.add_argument("--scenario", choices=["normal", "flash", "source"], default="flash")
    parser.add_argument("--time-scale", type=float, default=1.0, help="make waits this many times shorter (default 1)")
    parser.add_argument("--users", type=int, help="override the scenario's users per checkout path")
    parser.add_argument("--duration", type=float, help="override the scenario's real seconds per checkout path")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="sandbox seconds to wait for the backlog")
    parser.add_argument("--port", type=int, default=0, help="emulator port on 127.0.0.1 (default: a free one)")
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE", help="CDK context")
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    parser.add_argument(
        "--chaos",
        action="store_true",
        help="kill workers mid-payment, fail/decline payments, send poison (see sandbox/chaos.py)",
    )
    args = parser.parse_args(argv)
    if args.time_scale < 1:
        parser.error("--time-scale must be >= 1")
    try:
        context = parse_context_args(args.context)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    from sandbox.chaos import ChaosPlan
    from sandbox.report import headline, model_rows
    from sandbox.run import Options, SandboxError, run

    opts = Options(
        compute=args.compute,
        scenario=args.scenario,
        time_scale=args.time_scale,
        users=args.users,
        duration_s=args.duration,
        drain_timeout_s=args.drain_timeout,
        port=args.port,
        context=context,
        reports=args.reports.resolve(),
        chaos=ChaosPlan() if args.chaos else None,
    )
    try:
        result = run(opts, progress=lambda msg: print(f"[sandbox] {msg}", flush=True))
    except KeyboardInterrupt:
        print("[sandbox] interrupted: every process it started has been stopped", file=sys.stderr)
        return 130
    except (SandboxError, DeployError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    width = max(len(k) for k, _ in headline(result["summary"]))
    print()
    for key, value in headline(result["summary"]):
        print(f"{key:<{width}}  {value}")
    print("\nmeasured vs the model (planner/, from the arrival log and the deployed config)")
    rows = model_rows(result["summary"])
    width = max(len(r[0]) for r in rows)
    for label, measured, model, off in rows:
        print(f"  {label:<{width}}  {measured:>8}  model {model:>8}  {off}")
    print("\nbars")
    bars = result["summary"]["bars"]
    width = max(len(b["bar"]) for b in bars)
    for bar in bars:
        verdict = "met" if bar["met"] else "MISSED"
        print(f"  {bar['bar']:<{width}}  {bar['measured']:>9}  target {bar['target']:<11} {verdict}")
    print(f"\nreport: {result['dir']}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
