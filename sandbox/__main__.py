"""``python -m sandbox``: deploy the real stacks onto a local AWS and run a flash sale."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

from orders.cli import OneLineParser
from planner.config import parse_context_args
from sandbox.deploy import DeployError


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--compute", choices=["lambda", "ecs"], default="lambda")
    parser.add_argument("--scenario", choices=["normal", "flash", "source"], default="flash")
    parser.add_argument("--time-scale", type=float, default=2.0, help="make waits this many times shorter (default 2)")
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
