"""``python -m sandbox``: every sandbox command behind one argument parser.

``python -m sandbox [sale] [--compute ...]`` runs one flash sale (``make sandbox``, ``make chaos``);
``compare`` runs the variants side by side (``make compare``); ``up``, ``down``, ``deploy-local``,
``load``, ``watch`` and ``context`` drive a local stack that stays up (``make up`` ...).

Bad input is one line and exit 2 (a ``-c`` value is validated as synth validates it, before anything
starts); a failure the user can act on is one line and exit 1; never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orders.cli import OneLineParser
from planner.config import ConfigError, parse_context_args, resolve
from planner.model import VARIANTS

SCENARIO_NAMES = ("normal", "flash", "source")  # sandbox.runs.run.SCENARIOS
COMMANDS = ("sale", "compare", "up", "down", "deploy-local", "load", "watch", "context", "token")


def _say(prefix: str = "sandbox") -> Callable[[str], None]:
    return lambda msg: print(f"[{prefix}] {msg}", flush=True)


# ----------------------------------------------------------------------------- shared options
def _context(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE", help="CDK context")


def _compute(p: argparse.ArgumentParser, default: str | None = "lambda", help: str | None = None) -> None:
    p.add_argument("--compute", choices=["lambda", "ecs", "lambda-mi"], default=default, help=help)


def _time_scale(p: argparse.ArgumentParser, default: float) -> None:
    p.add_argument(
        "--time-scale", type=float, default=default, help=f"make waits this many times shorter (default {default:g})"
    )


def _port(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=0, help="emulator port on 127.0.0.1 (default: a free one)")


def _reports(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reports", type=Path, default=Path("reports"), help="where report folders go")


def _sale_shape(p: argparse.ArgumentParser, *, duration_help: str, drain_timeout: float) -> None:
    from sandbox.stack.topology import DEFAULT_CATALOG

    p.add_argument(
        "--catalog",
        type=Path,
        default=DEFAULT_CATALOG,
        help="the sale's catalog file, loaded before the load (default: sandbox/catalogs/flash-sale.json)",
    )
    p.add_argument("--users", type=int, help="users per checkout path (default: the scenario's)")
    p.add_argument("--duration", dest="duration_s", type=float, help=duration_help)
    p.add_argument(
        "--drain-timeout",
        dest="drain_timeout_s",
        type=float,
        default=drain_timeout,
        help="sandbox seconds to wait for the backlog",
    )


def _options(cls: Any, args: argparse.Namespace, **overrides: Any) -> Any:
    """``cls`` (a dataclass of a command's options) from the parsed arguments of the same names."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{**{n: v for n, v in vars(args).items() if n in names}, **overrides})


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m sandbox", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    sale = sub.add_parser("sale", help="one flash sale on a fresh local deployment (the default command)")
    _compute(sale)
    sale.add_argument("--scenario", choices=SCENARIO_NAMES, default="flash")
    _time_scale(sale, 1.0)
    _sale_shape(sale, duration_help="real seconds per checkout path (default: the scenario's)", drain_timeout=300.0)
    _port(sale)
    _context(sale)
    _reports(sale)
    sale.add_argument(
        "--chaos",
        action="store_true",
        help="kill workers mid-payment, fail/decline payments, send poison (see sandbox/runs/chaos.py)",
    )
    sale.add_argument(
        "--no-size",
        dest="size",
        action="store_false",
        help="do not size the sale to this machine (it is not sized anyway with --users or worker caps in -c)",
    )

    compare = sub.add_parser("compare", help="the variants on one scenario, the model, AWS and cost")
    compare.add_argument("--variants", nargs="+", choices=list(VARIANTS))
    _time_scale(compare, 1.0)
    _sale_shape(
        compare,
        duration_help="real seconds per checkout path (default 20, sized to this machine; 10 with --users)",
        drain_timeout=600.0,
    )
    compare.add_argument(
        "--no-size",
        dest="size",
        action="store_false",
        help="the scenario's own sale (10 users back to back), not one sized to this machine",
    )
    _context(compare)
    _reports(compare)
    compare.add_argument("--no-worker-table", dest="worker_table", action="store_false")

    up = sub.add_parser("up", help="deploy and run the stack until Ctrl-C or `down`")
    _compute(up)
    _time_scale(up, 2.0)
    _port(up)
    up.add_argument("--api-port", type=int, default=0, help="API port on 127.0.0.1 (default: a free one)")
    _context(up)
    _reports(up)
    sub.add_parser("down", help="stop the running stack and every process it started")
    deploy_local = sub.add_parser("deploy-local", help="cdk deploy onto the running stack (its context plus -c)")
    _compute(deploy_local, default=None, help="switch the workers (default: keep)")
    _context(deploy_local)
    load = sub.add_parser("load", help="Locust against the running stack")
    load.add_argument("--scenario", choices=SCENARIO_NAMES, default="flash")
    load.add_argument("--web", action="store_true", help="Locust's web UI on 127.0.0.1 instead of a headless run")
    load.add_argument("--web-port", type=int, default=8089)
    watch = sub.add_parser("watch", help="the running stack, refreshed each second")
    watch.add_argument("--once", action="store_true", help="print one frame and exit")
    sub.add_parser("context", help="the running stack's context as -c arguments, for your own `npx cdk deploy`")
    token = sub.add_parser("token", help="a signed-in customer's token for the running stack (1 h)")
    token.add_argument("customer", help="the customer id (the token's subject)")
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse and validate: the context as synth would read it, the time scale, the sizes."""
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["sale", *argv]  # `python -m sandbox --compute ecs` is a sale
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "context"):
        try:
            args.context = parse_context_args(args.context)
            if args.command in ("sale", "up", "compare"):
                # As run_context layers them: the variant, then the -c overrides on top.
                compute = {"compute": args.compute} if getattr(args, "compute", None) else {}
                resolve({**compute, **args.context})
        except (ValueError, ConfigError) as exc:
            parser.error(str(exc))
    if getattr(args, "time_scale", 1.0) < 1:
        parser.error("--time-scale must be >= 1")
    for name, flag in (("users", "--users"), ("duration_s", "--duration"), ("drain_timeout_s", "--drain-timeout")):
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            parser.error(f"{flag} must be > 0, got {value:g}")
    return args


# ----------------------------------------------------------------------------- commands
def cmd_sale(args: argparse.Namespace) -> int:
    from sandbox.results.report import terminal_summary
    from sandbox.runs.chaos import ChaosPlan
    from sandbox.runs.run import Options, run
    from sandbox.stack.sizing import fixes_the_sale

    fixed = args.users is not None or fixes_the_sale(args.context)  # a chaos sale too is sized: its faults ride on it
    opts = _options(
        Options,
        args,
        reports=args.reports.resolve(),
        chaos=ChaosPlan() if args.chaos else None,
        size=args.size and not fixed,
    )
    result = run(opts, progress=_say())
    print(terminal_summary(result["summary"], result["dir"]))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from sandbox.runs import compare

    outdir = compare.compare(
        variants=args.variants or list(compare.RUNS),
        users=args.users if args.users is not None or args.size else 10,
        duration_s=args.duration_s,
        time_scale=args.time_scale,
        drain_timeout_s=args.drain_timeout_s,
        context=args.context,
        reports=args.reports.resolve(),
        worker_table=args.worker_table,
        progress=_say("compare"),
        catalog=args.catalog,
    )
    print(f"[compare] {outdir / 'comparison.md'}")
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    from sandbox.runs import live

    say = _say()
    if args.command == "up":
        return live.up(_options(live.UpOptions, args), progress=say)
    if args.command == "down":
        return live.down(progress=say)
    if args.command == "deploy-local":
        live.deploy_local({**args.context, **({"compute": args.compute} if args.compute else {})}, progress=say)
        return 0
    if args.command == "load":
        live.load(args.scenario, web=args.web, web_port=args.web_port, progress=say)
        return 0
    if args.command == "token":
        from orders.domain.errors import ValidationError
        from orders.domain.models import validate_id
        from sandbox.emulator.tokens import mint
        from sandbox.errors import SandboxError

        state = live.require_state()
        if not state.get("jwt_key"):
            raise SandboxError("the running stack takes no tokens (apiAuth is not jwt)")
        try:
            customer = validate_id(args.customer, "customer")
        except ValidationError as exc:
            raise SandboxError(f"{exc.field}: {exc.message}") from None
        print(mint(Path(state["jwt_key"]), customer))
        return 0
    if args.command == "context":
        state = live.require_state()
        pairs = {**state["context"], "powertoolsLayerArn": state["layer_arn"]}
        print(" ".join(f"-c {k}={v}" for k, v in pairs.items()))
        return 0
    from sandbox.runs.watch import watch

    return watch(once=args.once)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command in ("sale", "compare", "up"):
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    from sandbox.errors import SandboxError
    from sandbox.stack.deploy import DeployError

    commands: dict[str, Callable[[argparse.Namespace], int]] = {"sale": cmd_sale, "compare": cmd_compare}
    handler: Callable[[argparse.Namespace], Any] = commands.get(args.command, cmd_live)
    try:
        return int(handler(args))
    except (SandboxError, DeployError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.command == "sale":
            print("[sandbox] interrupted: every process it started has been stopped", file=sys.stderr)
        return 130
