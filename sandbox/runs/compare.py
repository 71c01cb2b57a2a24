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
from sandbox.results.comparison import SOURCE_WORKER_ROWS, write
from sandbox.results.report import report_dir

RUNS = {
    "ecs": ("ecs", {}),
    # Both SQS modes at 20 environments, the smallest provisioned mapping AWS allows (2 pollers x 10 invokes):
    # they differ in how the mapping scales to them, nothing else.
    "lambda-sqs": ("lambda", {"lambdaTrigger": "sqs", "reservedConcurrency": "20", "maxConcurrency": "20"}),
    "lambda-sqs-provisioned": (
        "lambda",
        {"lambdaTrigger": "sqs", "lambdaPollerMode": "provisioned", "maxConcurrency": "0"},
    ),
    "lambda-sns": ("lambda", {"lambdaTrigger": "sns"}),
    # Managed Instances at the same 20 requests: 10 environments of 2, from Lambda's 3 (6 requests) up.
    "lambda-mi": ("lambda-mi", {"lmiMaxEnvironments": "10", "maxConcurrency": "20"}),
}


def compare(
    *,
    variants: list[str],
    users: int,
    duration_s: float,
    time_scale: float,
    drain_timeout_s: float,
    context: dict[str, str],
    reports: Path,
    worker_table: bool,
    progress: Any,
    catalog: Path | None = None,
) -> Path:
    """Run each variant's sale, then write the comparison; returns its folder."""
    from sandbox.runs.run import Options, run

    outdir = report_dir(reports, "compare")
    runs: dict[str, dict[str, Any]] = {}
    dirs: dict[str, Path] = {}
    for variant in variants:
        compute, variant_context = RUNS[variant]
        progress(f"== {variant} ==")
        opts = Options(
            compute=compute,
            scenario="flash",
            time_scale=time_scale,
            users=users,
            duration_s=duration_s,
            drain_timeout_s=drain_timeout_s,
            context={**variant_context, **context},
            reports=reports,
            label=variant.removeprefix(compute),  # the folder is named after the variant: lambda-sqs, lambda-mi
        )
        if catalog is not None:
            opts.catalog = catalog
        result = run(opts, progress=lambda msg: progress(f"  {msg}"))
        runs[variant], dirs[variant] = result["summary"], result["dir"]
    write(outdir, runs, dirs, measured_worker_table() if worker_table else None)
    return outdir


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
