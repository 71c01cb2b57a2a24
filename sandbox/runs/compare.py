"""``python -m sandbox compare`` (`make compare`): the variants on one scenario, the model, AWS and cost.

Runs ecs, lambda with the SQS trigger (standard, then provisioned pollers), lambda with the SNS
trigger and lambda on Managed Instances one after another in the sandbox, then writes
``reports/<ts>-compare/``: comparison.md
(measured vs model, predicted on AWS at the source's scale, cost by volume,
failure behaviour, the source's tables corrected), comparison.json and charts
(``sandbox.results.comparison``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from planner import aws
from planner.config import resolve
from sandbox.results.comparison import SOURCE_WORKER_ROWS, write
from sandbox.results.report import report_dir
from sandbox.stack import sizing
from sandbox.stack.sizing import Sizing
from sandbox.stack.topology import run_context

# Each variant's mode; the workers are sized to the machine (below) unless the user fixes the sale.
RUNS = {
    "ecs": ("ecs", {}),
    "lambda-sqs": ("lambda", {"lambdaTrigger": "sqs"}),
    "lambda-sqs-provisioned": (
        "lambda",
        {"lambdaTrigger": "sqs", "lambdaPollerMode": "provisioned", "maxConcurrency": "0"},
    ),
    "lambda-sns": ("lambda", {"lambdaTrigger": "sns"}),
    "lambda-mi": ("lambda-mi", {}),
}
# A sale of the user's own size (--users, or worker caps in -c): both SQS modes at 20 environments, the
# smallest provisioned mapping AWS allows, and Managed Instances at 10 environments of 2: they differ in how
# they scale to them, nothing else.
FIXED = {
    "lambda-sqs": {"reservedConcurrency": "20", "maxConcurrency": "20"},
    "lambda-mi": {"lmiMaxEnvironments": "10", "maxConcurrency": "20"},
}
SIZED_DURATION_S = 20.0  # per checkout path: the tracking bar wants 20 orders tracked (1.5/s)
FIXED_DURATION_S = 10.0


def compare(
    *,
    variants: list[str],
    users: int | None,
    duration_s: float | None,
    time_scale: float,
    drain_timeout_s: float,
    context: dict[str, str],
    reports: Path,
    worker_table: bool,
    progress: Any,
    catalog: Path | None = None,
) -> Path:
    """Run each variant's sale, then write the comparison; returns its folder.

    Unless the user fixes it (``users``, or worker caps in ``context``), the sale is sized to the machine
    once for every variant (``sizing.size_together``): the same arrivals, each variant's workers at about
    half of them."""
    from sandbox.runs.run import Options, run

    outdir = report_dir(reports, "compare")
    fixed = users is not None or sizing.fixes_the_sale(context)
    sized = None if fixed else _size(variants, context, users=10, progress=progress)
    runs: dict[str, dict[str, Any]] = {}
    dirs: dict[str, Path] = {}
    for variant in variants:
        compute, variant_context = RUNS[variant]
        if sized is None:
            variant_context = {**variant_context, **FIXED.get(variant, {})}
        progress(f"== {variant} ==")
        opts = Options(
            compute=compute,
            scenario="flash",
            time_scale=time_scale,
            users=users or 10,
            duration_s=duration_s or (FIXED_DURATION_S if sized is None else SIZED_DURATION_S),
            drain_timeout_s=drain_timeout_s,
            context={**variant_context, **context},
            reports=reports,
            label=variant.removeprefix(compute),  # the folder is named after the variant: lambda-sqs, lambda-mi
            size=sized is not None,
            sized=sized[variant] if sized else None,
        )
        if catalog is not None:
            opts.catalog = catalog
        result = run(opts, progress=lambda msg: progress(f"  {msg}"))
        runs[variant], dirs[variant] = result["summary"], result["dir"]
    write(outdir, runs, dirs, measured_worker_table() if worker_table else None)
    return outdir


def _size(variants: list[str], context: dict[str, str], *, users: int, progress: Any) -> dict[str, Sizing]:
    """One sale for all of them, from the cores free now and what an order of each last cost here."""
    from sandbox.runs import cpu
    from sandbox.runs.live import state_dir

    def config(variant: str, extra: dict[str, str] | None = None) -> Any:
        compute, variant_context = RUNS[variant]
        return resolve(run_context(compute, variant_context, context, extra))

    configs = {v: config(v) for v in variants}
    calibrations = {v: sizing.load(v, state_dir()) for v in variants}
    sized = sizing.size_together(
        configs,
        calibrations,
        users=users,
        cores=cpu.free_cores(),
        with_latency=lambda v, ms: config(v, {"paymentLatencyMs": str(ms)}),
    )
    first = next(iter(sized.values()))
    latency = next((z.context["paymentLatencyMs"] for z in sized.values() if "paymentLatencyMs" in z.context), None)
    progress(
        f"sized to this machine: {first.arrival_per_s:.1f} orders/s for every variant (the costliest's share of "
        f"{first.free_cores:.1f} free cores)"
        + (
            f"; payments take {latency} ms so the smallest deployment of each is slower than the sale"
            if latency
            else ""
        )
    )
    for v, z in sized.items():
        progress(
            f"  {v}: "
            + ", ".join(f"{k}={x}" for k, x in z.context.items())
            + f" ({z.worker_capacity_per_s:.2f} paid/s)"
        )
    return sized


def measured_worker_table() -> list[list[Any]]:
    """The source's 1/5/20/100 goroutine table: measured by the real ECS worker in memory, and the limit."""
    from sandbox.runs.in_memory import in_memory

    rows = []
    latency_ms, slots = 60, 5
    for c, (src_rate, src_drain) in SOURCE_WORKER_ROWS.items():
        measured = in_memory(1, 100 if c == 1 else 300, c, slots, latency_ms)
        # back to the source's 3 s payment: the rate scales with 1 / latency
        rate = measured["rate"] * latency_ms / 3000
        limit = aws.ecs_task_capacity_per_s(worker_concurrency=c, payment_slots=slots, payment_latency_s=3.0)
        drain = 2784 / limit / 60
        rows.append(
            [
                c,
                f"{src_rate:.2f}",
                f"{rate:.2f}",
                f"{limit:.2f}",
                f"{src_drain} min",
                f"{drain:.1f} min",
                "one shared 5-slot client caps a process at min(c, 5) / 3 s: no count of consumers beats 1.67/s"
                if c > slots
                else ("one consumer pays one order at a time" if c == 1 else "every slot busy"),
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m sandbox.runs.compare ...`` is ``python -m sandbox compare ...``."""
    import sys

    from sandbox.cli import main as cli_main

    return cli_main(["compare", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
