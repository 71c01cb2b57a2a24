"""``python -m planner``: what a flash sale does to each variant, and what a month of orders costs.

  python -m planner plan --rate 60 --duration 60 --drain-slo 300 [-c key=value ...] [--json]
  python -m planner cost --orders 1000000 [-c key=value ...] [--arch x86] [--on-demand] [--no-free-tier]

``-c`` takes the same context keys as ``cdk synth`` (defaults from cdk.json), so the
effect of ``-c backlogPerTaskTarget=20`` on drain time and cost shows before a deploy.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from planner.cost import Assumptions, Prices, break_even, monthly_cost
from planner.model import VARIANTS, Timing, Workload, duration_text, simulate
from planner.plan import Target, hot_sku_limit, limits, setting, shards_needed, size
from planner.verdict import verdict

ROOT = Path(__file__).resolve().parents[1]
VOLUMES = (10_000, 100_000, 1_000_000, 10_000_000)


class UsageError(Exception):
    """A bad argument: printed as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def load_app_config(overrides: list[str]) -> Any:
    """The same frozen config ``app.py`` builds: cdk.json's context merged with ``-c key=value``."""
    from planner.config import ConfigError, parse_context_args, resolve

    try:
        context = parse_context_args(overrides)
    except ValueError as exc:
        raise UsageError(f"argument {exc}") from None
    try:
        return resolve(context)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _positive(kind: type, name: str) -> Any:
    def parse(raw: str) -> Any:
        try:
            value = kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {raw!r}") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{name} must be > 0, got {raw!r}")
        return value

    return parse


def _share(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {raw!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {raw!r}")
    return value


def _money(x: float) -> str:
    return f"${x:,.2f}" if x >= 0.01 or x == 0 else f"${x:.4f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _assumptions(args: argparse.Namespace, cfg: Any) -> Assumptions:
    return Assumptions(
        architecture=args.arch,
        spot=not args.on_demand and cfg.fargate_capacity == "spot",
        free_tier=not args.no_free_tier,
        cold_start_share=args.cold_start_share,
    )


def cmd_plan(args: argparse.Namespace) -> int:
    cfg = load_app_config(args.context)
    base = Workload.from_config(cfg)
    target = Target(rate_per_s=args.rate, duration_s=args.duration, drain_slo_s=args.drain_slo)
    prices = Prices.load(args.prices)
    a = _assumptions(args, cfg)
    configured: dict[str, dict[str, Any]] = {}
    rows = []
    for variant in VARIANTS:
        w = Workload.from_config(cfg, variant)
        r = simulate(w, target.arrivals, Timing.aws(), horizon_s=args.duration + 6 * 3600)
        cost = monthly_cost(w, args.orders_per_month, prices, a)
        configured[variant] = _figures(w, r, cost["total_usd"])
        rows.append(
            [
                variant,
                f"{w.max_workers} x {w.worker_capacity_per_s:.2f}/s = {w.capacity_per_s:.1f}/s",
                f"{r.peak_backlog:,}",
                duration_text(r.drain_seconds),
                duration_text(r.wait_percentile(99)),
                str(r.peak_workers),
                duration_text(r.first_scale_out_s),
                duration_text(r.full_capacity_s) if r.full_capacity_s is not None else "not reached",
                _money(cost["total_usd"]),
            ]
        )
    smallest: dict[str, dict[str, Any] | None] = {}
    small_rows, limit_rows, found_limits = [], [], []
    for variant in VARIANTS:
        sizing = size(variant, base, target, Timing.aws())
        if sizing.workload is None or sizing.result is None:
            smallest[variant] = None
            small_rows.append([variant, sizing.note, "", "", "", ""])
        else:
            r = sizing.result
            cost = monthly_cost(sizing.workload, args.orders_per_month, prices, a)
            smallest[variant] = {
                "setting": {sizing.knob: sizing.ceiling},
                "context": setting(sizing.workload),
                **_figures(sizing.workload, r, cost["total_usd"]),
            }
            small_rows.append(
                [
                    variant,
                    setting(sizing.workload),
                    duration_text(r.drain_seconds),
                    duration_text(r.wait_percentile(99)),
                    str(r.peak_workers),
                    _money(cost["total_usd"]),
                ]
            )
        found = limits(target, sizing, api_rate_limit=cfg.api_throttle_rate, stock_shards=cfg.stock_shards)
        for lim in found[: args.limits]:
            found_limits.append(
                {
                    "variant": variant,
                    "name": lim.name,
                    "limit": lim.limit,
                    "unit": lim.unit,
                    "demand": lim.demand,
                    "headroom": lim.headroom,
                    "adjustable": lim.adjustable,
                    "source": lim.source,
                }
            )
            limit_rows.append(
                [
                    variant,
                    lim.name,
                    f"{lim.demand:,.0f} of {lim.limit:,.0f} {lim.unit}",
                    "OVER" if lim.headroom < 1 else f"{lim.headroom:,.1f}x",
                    lim.adjustable,
                ]
            )
    by_volume = {
        v: {n: monthly_cost(Workload.from_config(cfg, v), n, prices, a)["total_usd"] for n in VOLUMES} for v in VARIANTS
    }
    choose = verdict(configured, by_volume)
    if args.json:
        out = {"variants": configured, "smallest": smallest, "limits": found_limits, "verdict": choose}
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"flash sale: {args.rate:g} orders/s for {args.duration:g} s ({round(args.rate * args.duration):,} orders), "
        f"drain SLO {args.drain_slo:g} s; payment {cfg.payment_slots} slots x {cfg.payment_latency_ms} ms per client"
    )
    print("\nas configured (cdk.json + -c), predicted on AWS:")
    header = ["variant", "capacity", "peak backlog", "drain", "wait p99", "peak workers", "first worker"]
    print(_table([*header, "full capacity", "per month"], rows))
    print(f"(per month at {args.orders_per_month:,.0f} orders; see `python -m planner cost`)")
    mi = Workload.from_config(cfg, "lambda-mi")
    print(
        f"(lambda-mi: {mi.mi_min_envs}..{mi.mi_max_envs} environments of {mi.mi_vcpus_per_env:g} vCPU x "
        f"{mi.mi_concurrency} requests (lmi* keys); its VPC's interface endpoints are in its cost)"
    )
    print("\nsmallest deployment that meets the drain SLO:")
    print(_table(["variant", "setting", "drain", "wait p99", "peak workers", "per month"], small_rows))
    print("\nlimits the target meets first (demand at the target vs the limit; headroom = limit / demand):")
    print(_table(["variant", "limit", "demand", "headroom", "raise?"], limit_rows))
    print("\nthe answer, read off the figures above (as configured):")
    print("\n".join(f"  {line}" for line in choose))
    hot = hot_sku_limit(args.rate, cfg.stock_shards)
    print(
        f"\nhot SKU: every order reserves one SKU's stock: {hot.demand:,.0f} write units/s against "
        f"stockShards={cfg.stock_shards} x 1,000 = {hot.limit:,.0f} ({'OVER' if hot.headroom < 1 else 'within'}); "
        f"the smallest stockShards for {args.rate:g} orders/s is {shards_needed(args.rate)}"
    )
    return 0


def _figures(w: Workload, r: Any, cost_per_month: float) -> dict[str, Any]:
    """One variant's predicted sale for ``--json`` (seconds on AWS; None where not reached)."""
    return {
        "capacity_per_s": w.capacity_per_s,
        "peak_backlog": r.peak_backlog,
        "drain_seconds": r.drain_seconds,
        "wait_p99_seconds": r.wait_percentile(99),
        "peak_workers": r.peak_workers,
        "first_scale_out_seconds": r.first_scale_out_s,
        "full_capacity_seconds": r.full_capacity_s,
        "cost_per_month": cost_per_month,
    }


def cmd_cost(args: argparse.Namespace) -> int:
    cfg = load_app_config(args.context)
    prices = Prices.load(args.prices)
    a = _assumptions(args, cfg)
    workloads = {v: Workload.from_config(cfg, v) for v in VARIANTS}
    volumes = sorted({*VOLUMES, int(args.orders)})
    print(
        f"USD per month, {prices.region}, prices read {prices.read_on}; lambda {a.architecture}, "
        f"fargate {'spot (best case)' if a.spot else 'on-demand'} {a.ecs_architecture}, "
        f"free tier {'on' if a.free_tier else 'off'}, cold starts {a.cold_start_share:.0%}, minTasks {cfg.min_tasks}"
    )
    rows = []
    for n in volumes:
        costs = {v: monthly_cost(w, n, prices, a) for v, w in workloads.items()}
        rows.append(
            [f"{n:,}"] + [f"{_money(c['total_usd'])} ({_money(c['total_usd'] / n * 1000)}/1k)" for c in costs.values()]
        )
    print(_table(["orders/month", *VARIANTS], rows))
    detail = {v: monthly_cost(w, args.orders, prices, a) for v, w in workloads.items()}
    print(f"\nby service at {args.orders:,.0f} orders/month:")
    services = list(next(iter(detail.values()))["by_service_usd"])
    print(
        _table(
            ["service", *VARIANTS],
            [[s] + [_money(detail[v]["by_service_usd"][s]) for v in VARIANTS] for s in services],
        )
    )
    print("\nbreak-even (orders/month where the cheaper variant changes):")

    def total(variant: str) -> Callable[[float], float]:
        return lambda x: float(monthly_cost(workloads[variant], x, prices, a)["total_usd"])

    for other in (v for v in VARIANTS if v != "ecs"):
        crossing = break_even(total(other), total("ecs"))
        if crossing is None:
            cheaper = (
                other
                if monthly_cost(workloads[other], 1e6, prices, a)["total_usd"]
                < monthly_cost(workloads["ecs"], 1e6, prices, a)["total_usd"]
                else "ecs"
            )
            print(f"  {other} vs ecs: none between 1,000 and 1,000,000,000 ({cheaper} is cheaper throughout)")
        else:
            print(f"  {other} vs ecs: {crossing:,.0f} orders/month")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m planner", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common = _Parser(add_help=False)
    common.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE", help="CDK context")
    common.add_argument("--prices", type=Path, default=ROOT / "planner" / "prices.json", help="price file")
    common.add_argument("--arch", choices=["arm", "x86"], default="arm", help="Lambda architecture (default arm)")
    common.add_argument("--on-demand", action="store_true", help="price Fargate on-demand even if the config says spot")
    common.add_argument("--no-free-tier", action="store_true", help="ignore the always-free tiers")
    common.add_argument("--cold-start-share", type=_share, default=0.05, help="invocations that are cold (0-1)")
    p = sub.add_parser("plan", parents=[common], help="a flash sale on each variant, and the smallest that meets it")
    p.add_argument("--rate", type=_positive(float, "--rate"), required=True, help="orders per second during the sale")
    p.add_argument("--duration", type=_positive(float, "--duration"), required=True, help="seconds the sale lasts")
    p.add_argument("--drain-slo", type=_positive(float, "--drain-slo"), required=True, help="seconds to drain after")
    p.add_argument("--orders-per-month", type=_positive(float, "--orders-per-month"), default=1_000_000)
    p.add_argument("--limits", type=int, default=3, help="limits to show per variant")
    p.add_argument("--json", action="store_true", help="print the figures as JSON (for scripts)")
    p.set_defaults(func=cmd_plan)
    c = sub.add_parser("cost", parents=[common], help="monthly cost by volume and service, and the break-even")
    c.add_argument("--orders", type=_positive(float, "--orders"), required=True, help="orders per month")
    c.set_defaults(func=cmd_cost)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
