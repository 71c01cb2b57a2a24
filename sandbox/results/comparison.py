"""The comparison document (``make compare``): the runs measured, AWS predicted, cost, failure behaviour,
and the source's tables recomputed. Built from the runs' summaries; nothing here runs a sale."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from planner.config import resolve
from planner.cost import Assumptions, Prices, assumptions_table, break_even, monthly_cost, sale_cost
from planner.model import VARIANTS, Timing, Workload, arrivals_from_profile, duration_text, simulate
from planner.plan import Target, setting, size
from sandbox.results import metrics, report
from sandbox.results.report import fmt_or_na
from sandbox.results.tables import md_table

VOLUMES = (10_000, 100_000, 1_000_000, 10_000_000)
COLORS = {
    "ecs": "tab:blue",
    "lambda-sqs": "tab:orange",
    "lambda-sqs-provisioned": "tab:red",
    "lambda-sns": "tab:green",
    "lambda-mi": "tab:purple",
}

# The source document's figures (seeds/flash-sale-experiments.txt), reproduced to be corrected.
SOURCE_COST_ROWS = {10_000: (0.0, 20.0), 100_000: (0.0, 50.0), 500_000: (8.33, 80.0), 1_000_000: (18.33, 98.0)}
SOURCE_WORKER_ROWS = {1: (1.67, 48), 5: (1.83, 43), 20: (1.45, 30), 100: (2.48, 19)}  # orders/s, drain minutes


def aws_predictions(prices: Prices, a: Assumptions, orders_per_month: float) -> dict[str, Any]:
    """The source's scale on AWS: its recommended config, and the smallest config the planner finds."""
    base = resolve({})
    source_configs = {
        "ecs": Workload.from_config(
            resolve({"compute": "ecs", "maxTasks": 25, "workerConcurrency": 100, "queueVisibilityTimeoutSeconds": 300}),
            "ecs",
        ),
        "lambda-sqs": Workload.from_config(resolve({"reservedConcurrency": 50, "maxConcurrency": 50}), "lambda-sqs"),
        # Not in the source (provisioned mode came later): its 50 environments as 5 pollers, 2 always ready.
        "lambda-sqs-provisioned": Workload.from_config(
            resolve(
                {
                    "reservedConcurrency": 50,
                    "maxConcurrency": 0,
                    "lambdaPollerMode": "provisioned",
                    "lambdaMinPollers": 2,
                    "lambdaMaxPollers": 5,
                }
            )
        ),
        "lambda-sns": Workload.from_config(resolve({"reservedConcurrency": 50}), "lambda-sns"),
    }
    out: dict[str, Any] = {}
    for rate in (47.0, 60.0):
        target = Target(rate_per_s=rate, duration_s=60, drain_slo_s=300)
        orders = round(rate * 60)
        for variant in VARIANTS:
            for label, workload in (
                ("source", source_configs.get(variant)),  # lambda-mi is newer than the source
                ("planner", size(variant, Workload.from_config(base, variant), target).workload),
            ):
                if workload is None:
                    out[f"{rate:g}/{variant}/{label}"] = None
                    continue
                r = simulate(workload, target.arrivals, Timing.aws())
                out[f"{rate:g}/{variant}/{label}"] = {
                    "rate": rate,
                    "variant": variant,
                    "config": label,
                    "setting": setting(workload),
                    "drain_seconds": r.drain_seconds,
                    "wait_p99_s": r.wait_percentile(99),
                    "peak_workers": r.peak_workers,
                    "first_worker_s": r.first_scale_out_s,
                    "sale_usd": sale_cost(workload, r, orders, prices, a),
                    "month_usd": monthly_cost(workload, orders_per_month, prices, a)["total_usd"],
                }
    return out


def cost_by_volume(prices: Prices, a: Assumptions) -> tuple[dict[str, dict[str, float]], dict[str, float | None]]:
    cfg = resolve({})
    workloads = {v: Workload.from_config(cfg, v) for v in VARIANTS}
    table = {v: {str(n): monthly_cost(w, n, prices, a)["total_usd"] for n in VOLUMES} for v, w in workloads.items()}

    def total(v: str) -> Any:
        return lambda n: monthly_cost(workloads[v], n, prices, a)["total_usd"]

    even = {f"{v}_vs_ecs": break_even(total(v), total("ecs")) for v in VARIANTS if v != "ecs"}
    return table, even


def charts(
    outdir: Path,
    runs: dict[str, dict[str, Any]],
    dirs: dict[str, Path],
    even: dict[str, float | None],
    prices: Prices,
    a: Assumptions,
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    series: dict[str, list[dict[str, float]]] = {}
    for variant, s in runs.items():
        rows = json.loads((dirs[variant] / "samples.json").read_text())
        start = s["timeline"]["async_start"]
        series[variant] = [{**r, "t": r["t"] - start} for r in rows if r["t"] >= start]
    for key, title, ylabel, value in (
        ("backlog", "Backlog (waiting + in flight)", "messages", lambda r: r["visible"] + r["inflight"]),
        ("workers", "Workers (tasks or busy environments)", "workers", lambda r: r["workers"]),
        ("paid", "Cumulative orders finished", "orders", None),
    ):
        fig, ax = plt.subplots(figsize=(8, 3.2))
        for variant, rows in series.items():
            if not rows:
                continue
            if value is None:
                base = metrics.finished(rows[0])
                ys = [metrics.finished(r) - base for r in rows]
            else:
                ys = [value(r) for r in rows]
            ax.plot([r["t"] for r in rows], ys, label=variant, color=COLORS[variant])
        ax.set_xlabel("sandbox seconds since the async load started")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(outdir / f"{key}.png", dpi=110)
        plt.close(fig)
        names.append(f"{key}.png")
    cfg = resolve({})
    fig, ax = plt.subplots(figsize=(8, 3.6))
    grid = [10 ** (3 + i / 20) for i in range(101)]
    for variant in VARIANTS:
        w = Workload.from_config(cfg, variant)
        ax.plot(grid, [monthly_cost(w, n, prices, a)["total_usd"] for n in grid], label=variant, color=COLORS[variant])
    heights = [0.3 / 3**i for i in range(len(even))]
    for height, (name, n) in zip(heights, even.items(), strict=True):
        if n is not None:
            ax.axvline(n, color=COLORS[name.replace("_vs_ecs", "")], linestyle=":", linewidth=1)
            ax.text(n, ax.get_ylim()[1] * height, f" {name.replace('_vs_ecs', '')} = ecs\n {n:,.0f}/month", fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("orders per month")
    ax.set_ylabel("USD per month")
    ax.set_title("Cost by volume (cdk.json defaults)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(outdir / "cost.png", dpi=110)
    plt.close(fig)
    names.append("cost.png")
    return names


def failure_table(runs: dict[str, dict[str, Any]]) -> list[list[Any]]:
    cfg = resolve({})
    retries_sqs = f"{cfg.max_receive_count} receives, then the DLQ (redrive policy)"
    rows = [
        [
            "retries",
            f"{retries_sqs}; backoff grows with the receive count",
            f"{retries_sqs}; only failed records (partial batch failures)",
            f"{cfg.sns_retry_attempts} async retries (~1 and ~2 min apart), events kept up to {cfg.max_event_age_s} s",
        ],
        [
            "dead-letter path",
            "SQS redrive to orders-dlq",
            "SQS redrive to orders-dlq",
            "Lambda on-failure destination and SNS subscription DLQ to orders-dlq",
        ],
        [
            "visibility",
            f"queue depth, age and in-flight in SQS; visibility {cfg.visibility_timeout_s} s, "
            "extended by a heartbeat while paying",
            f"queue depth and age in SQS; visibility {cfg.visibility_timeout_s} s >= 6 x timeout",
            "no queue to inspect: events wait in Lambda's internal async queue (AsyncEventAge metric)",
        ],
        [
            "what the operator sees",
            "alarms: DLQ not empty, oldest message age, worker failures, tasks at max",
            "alarms: DLQ not empty, oldest message age, function errors, throttles",
            "alarms: DLQ not empty, function errors, throttles",
        ],
        [
            "duplicates",
            "processor idempotency key + PAYING record: charged once at any redelivery age",
            "same handler, same guarantee",
            "same handler, same guarantee",
        ],
        [
            "crash mid-payment",
            "message reappears after the visibility timeout; lookup by key adopts the charge",
            "the batch reappears after the visibility timeout; same",
            "Lambda retries the event; same",
        ],
    ]
    # Provisioned pollers and Managed Instances change how the SQS mapping's workers scale, not how it retries
    # or dead-letters.
    rows = [[*row[:3], row[2], *row[3:], row[2]] for row in rows]
    rows.append(
        ["dead-lettered in this comparison"]
        + [str(runs[v]["dead_lettered"]) if v in runs else "not run" for v in VARIANTS]
    )
    rows.append(
        ["double charges in this comparison"]
        + [str(runs[v]["double_charges"]) if v in runs else "not run" for v in VARIANTS]
    )
    return rows


def _caps(config: dict[str, Any], variant: str) -> str:
    """The context keys that cap a run's workers."""
    keys = {
        "ecs": ("maxTasks", "workerConcurrency"),
        "lambda-sqs": ("reservedConcurrency", "maxConcurrency", "batchSize"),
        "lambda-sqs-provisioned": ("reservedConcurrency", "lambdaMinPollers", "lambdaMaxPollers", "batchSize"),
        "lambda-sns": ("reservedConcurrency",),
        "lambda-mi": ("lmiMinEnvironments", "lmiMaxEnvironments", "lmiPerEnvironmentConcurrency", "maxConcurrency"),
    }.get(variant, ())
    return ", ".join(f"{k}={config.get(k)}" for k in keys)


def _measured(runs: dict[str, dict[str, Any]]) -> list[str]:
    md: list[str] = [f"# ECS or Lambda: the flash sale compared ({datetime.now(UTC):%Y-%m-%d})", ""]
    md += ["## 1. Measured in the sandbox, with the model beside it", ""]
    some = next(iter(runs.values()), None)
    if some:
        md += [
            f"Same scenario for every variant: {some['users']} users, {some['phase_seconds']:.0f} sandbox s per "
            f"checkout path, time scale x{some['time_scale']:g}, payments {some['config']['paymentSlots']} slots x "
            f"{int(some['config']['paymentLatencyMs']) / 1000:g} s per client"
            + (
                f", sized to this machine at {some['sizing']['arrival_per_s']:.2f} orders/s for every variant"
                if some.get("sizing")
                else ""
            )
            + "; the workers each run deployed: "
            + "; ".join(f"{v} {_caps(runs[v]['config'], v)}" for v in VARIANTS if v in runs)
            + ". `model` is `planner/` predicting the run from its arrival log and the deployed config only.",
            "",
        ]
    header = ["figure", *[v for v in VARIANTS if v in runs]]
    rows: list[list[Any]] = []

    def row(label: str, get: Any) -> None:
        rows.append([label] + [get(runs[v]) for v in VARIANTS if v in runs])

    row("accepted (async)", lambda s: s["accepted"])
    row("accept rate (orders/s)", lambda s: f"{s['async_accept_rate_per_s']:.1f}")
    row(
        "answers: accepted or sold out (/s)",
        lambda s: f"{s.get('async_answer_rate_per_s', s['async_accept_rate_per_s']):.1f}",
    )
    row(
        "paid / failed / dead-lettered / lost",
        lambda s: f"{s['paid']} / {s['payment_failed']} / {s['dead_lettered']} / {s['lost']}",
    )
    row("charges / double charges", lambda s: f"{s['charges']} / {s['double_charges']}")
    for label, mk, modk, fmt in report.MODEL_FIGURES:
        row(
            f"{label}: measured / model",
            lambda s, mk=mk, modk=modk, fmt=fmt: (
                f"{fmt_or_na(s.get(mk), fmt)} / {fmt_or_na(s['model'].get(modk), fmt)}"
            ),
        )
    row(
        "order wait p99 (sandbox s): measured / model",
        lambda s: f"{s['wait_s']['p99']:.1f} / {s['model']['wait_p99_s']:.1f}",
    )
    row(
        "worker efficiency during the drain",
        lambda s: f"{s['worker_efficiency']['ratio']:.2f}" if s.get("worker_efficiency") else "n/a",
    )
    row("bars met", lambda s: f"{sum(b['met'] for b in s['bars'])} of {len(s['bars'])}")
    md += md_table(header, rows) + [""]

    return md


def _aws(predictions: dict[str, Any]) -> list[str]:
    md: list[str] = []
    md += [
        "## 2. Predicted on AWS at the source's scale",
        "",
        "47 and 60 orders/s for 60 s, payment 5 slots x 3 s per client, AWS timing (1-minute metric periods, "
        "60 s metric lag, 60 s Fargate task start). `source` = the source's recommendation (25 tasks x 100 "
        "consumers; reserved concurrency 50); `planner` = the smallest setting whose drain meets 300 s "
        "(`python -m planner plan`). Cost per sale: the workers it ran plus each order's requests; per month: "
        "1,000,000 orders.",
        "",
    ]
    prow = []
    for key, p in predictions.items():
        if p is None:
            rate, variant, label = key.split("/")
            why = "not in the source (newer than it)" if label == "source" else "no setting meets the SLO"
            prow.append([f"{rate}/s {variant} ({label})", why, "", "", "", "", ""])
            continue
        prow.append(
            [
                f"{p['rate']:g}/s {p['variant']} ({p['config']})",
                p["setting"],
                duration_text(p["drain_seconds"]),
                duration_text(p["wait_p99_s"]),
                p["peak_workers"],
                f"${p['sale_usd']:.3f}",
                f"${p['month_usd']:.2f}",
            ]
        )
    md += md_table(["case", "setting", "drain", "order wait p99", "peak workers", "per sale", "per month"], prow)
    md += [""]

    return md


def _cost(
    prices: Prices, a: Assumptions, costs: dict[str, dict[str, float]], even: dict[str, float | None]
) -> list[str]:
    md: list[str] = []
    md += [
        "## 3. Cost by volume",
        "",
        f"USD per month, us-east-1, prices read {prices.read_on} "
        "(`planner/prices.json`, each with its source); cdk.json defaults.",
        "",
    ]
    md += md_table(
        ["orders/month", *VARIANTS], [[f"{n:,}"] + [f"${costs[v][str(n)]:.2f}" for v in VARIANTS] for n in VOLUMES]
    )
    md += [""] + [
        f"- break-even {k.replace('_vs_', ' vs ')}: " + (f"{n:,.0f} orders/month" if n else "none between 1k and 1B")
        for k, n in even.items()
    ]
    md += ["", "Assumptions: " + ", ".join(f"{k}={v}" for k, v in assumptions_table(a).items()), ""]

    return md


def _failures(runs: dict[str, dict[str, Any]]) -> list[str]:
    md: list[str] = []
    md += ["## 4. Failure behaviour", ""]
    md += md_table(["", *VARIANTS], failure_table(runs)) + [""]

    return md


def _source_sync(runs: dict[str, dict[str, Any]]) -> list[str]:
    md: list[str] = []
    md += ["## 5. The source's tables, recomputed", "", "### Sync vs async", ""]
    sync_why = "5 slots / 3 s = 1.67/s: the processor's limit, both measured"
    first = next((runs[v] for v in VARIANTS if v in runs), None)
    if first and int(first["config"]["paymentLatencyMs"]) != 3000:  # a compare sized with a slower processor
        latency = int(first["config"]["paymentLatencyMs"]) / 1000
        sync_why = (
            f"ours at {latency:g} s a payment (the sale sized to this machine): "
            f"{first['sync']['limit_per_s']:.2f}/s its processor allowed the sync users"
        )
    srows = [
        ["sync throughput", "1.67 orders/s (95 in 60 s)"]
        + [f"{runs[v]['sync']['throughput_per_s_real']:.2f} orders/s real" for v in VARIANTS if v in runs][:1]
        + [sync_why]
    ]
    srows.append(
        ["async accepts", "48.27 orders/s (2,888 in 60 s)"]
        + [f"{runs[v]['async_accept_rate_per_s']:.1f} orders/s" for v in VARIANTS if v in runs][:1]
        + ["our API on one 2-core machine beside the emulator and the load generator"]
    )
    srows.append(
        ["async : sync", "30.4x"]
        + [fmt_or_na(runs[v]["async_to_sync_ratio_real"], "{:.1f}x") for v in VARIANTS if v in runs][:1]
        + ["ratio of the two rates above"]
    )
    md += md_table(["figure", "source", "ours", "why"], srows) + [""]
    return md


def _source_workers(worker_rows: list[list[Any]] | None) -> list[str]:
    md: list[str] = []
    md += [
        "### Worker concurrency (one ECS task, one payment client of 5 slots, 3 s per payment)",
        "",
        "Measured: the real ECS worker in memory at 60 ms per payment, scaled to 3 s. Drain: the source's "
        "2,784-message backlog at that rate.",
        "",
    ]
    if worker_rows is not None:
        md += md_table(
            [
                "consumers",
                "source orders/s",
                "measured orders/s",
                "limit min(c, 5)/3 s",
                "source drain",
                "drain at the limit",
                "why",
            ],
            worker_rows,
        ) + [""]
    else:
        md += ["(skipped: --no-worker-table)", ""]
    return md


def _source_queue() -> list[str]:
    md: list[str] = []
    backlog_run = simulate(
        Workload(variant="ecs", min_tasks=1, max_tasks=1, worker_concurrency=1, payment_slots=5),
        arrivals_from_profile([(48, 60)]),
        Timing.aws(task_start_s=0),
    )
    md += ["### Queue growth and drain", ""]
    md += md_table(
        ["figure", "source", "ours", "why"],
        [
            [
                "queue growth",
                "46.3 msgs/s",
                "48 - 1/3 = 47.7 msgs/s with 1 consumer; 48 - 1.67 = 46.3 with 5",
                "arrival - processing",
            ],
            [
                "drain of 2,784 at 1.67/s",
                "48 min",
                f"{2784 / (5 / 3) / 60:.1f} min",
                "backlog / (processing - arrival after the sale): the source's table divides wrongly",
            ],
            [
                "1 consumer, 48/s for 60 s (model)",
                "-",
                f"backlog {backlog_run.backlog_at_load_end:,}, drain {duration_text(backlog_run.drain_seconds)}",
                "one consumer pays one order per 3 s",
            ],
        ],
    ) + [""]
    return md


def _source_cold_starts(runs: dict[str, dict[str, Any]]) -> list[str]:
    md: list[str] = []
    md += ["### Lambda cold starts", ""]
    cold = [runs[v] for v in VARIANTS if v.startswith("lambda") and v in runs]
    md += md_table(
        ["figure", "source (Go, provided.al2)", "ours (Python 3.13 + Powertools, measured here)", "why"],
        [
            [
                "init duration",
                "57-66 ms (avg 59.93)",
                " / ".join(f"p50 {s['init_ms']['p50']:.0f} ms, max {s['init_ms']['max']:.0f} ms" for s in cold)
                or "not run",
                "a fresh interpreter importing the handler; clients are made lazily on first use",
            ],
            [
                "share of invocations",
                "50% (5 of 10)",
                " / ".join(f"{s['cold_starts']} environments" for s in cold) or "not run",
                "one per environment, reused while warm; billed as INIT since 1 Aug 2025",
            ],
        ],
    ) + [""]
    return md


def _source_cost(prices: Prices, a: Assumptions) -> list[str]:
    md: list[str] = []
    md += [
        "### Cost by volume (Lambda compute only, the source's own basis: 512 MB, 3 s, x86, one order per invocation)",
        "",
    ]
    crows = []
    lam = Workload(variant="lambda-sns", lambda_memory_mb=512, payment_latency_s=3.0)
    basis = Assumptions(architecture="x86", cold_start_share=0, flash_share=0, api_ms=0, invocation_overhead_ms=0)
    for n, (src_lambda, src_ecs) in SOURCE_COST_ROWS.items():
        c = monthly_cost(lam, n, prices, basis)
        requests = max(0.0, n - prices.free["lambda_requests"]) * prices["lambda_request_per_million"] / 1e6
        ours = c["by_service_usd"]["lambda_compute"] + requests
        ecs_full = monthly_cost(Workload.from_config(resolve({}), "ecs"), n, prices, a)["total_usd"]
        crows.append(
            [
                f"{n:,}",
                f"${src_lambda:.2f}",
                f"${ours:.2f}",
                f"${src_ecs:.0f}",
                f"${ecs_full:.2f}",
                "(GB-s - 400k free) x $0.0000166667; ECS: tasks for the work plus what scale-in keeps up, "
                "not a fixed fleet",
            ]
        )
    md += md_table(
        ["orders/month", "source Lambda", "ours Lambda", "source ECS", "ours ECS (all services)", "why"], crows
    ) + [""]
    return md


def _answer(costs: dict[str, dict[str, float]]) -> list[str]:
    """ "Choose X when", computed (``planner.verdict``) from the planner's AWS figures at the source's sale."""
    from planner.verdict import verdict

    cfg, target = resolve({}), Target(rate_per_s=60, duration_s=60, drain_slo_s=300)
    figures = {}
    for v in VARIANTS:
        w = Workload.from_config(cfg, v)
        r = simulate(w, target.arrivals, Timing.aws())
        figures[v] = {
            "capacity_per_s": w.capacity_per_s,
            "drain_seconds": r.drain_seconds,
            "wait_p99_seconds": r.wait_percentile(99),
            "full_capacity_seconds": r.full_capacity_s,
        }
    lines = verdict(figures, {v: {int(n): usd for n, usd in by_n.items()} for v, by_n in costs.items()})
    md = ["## 7. The answer, read off the figures (AWS, cdk.json defaults, 60 orders/s for 60 s)", ""]
    return md + [f"- {line}" for line in lines] + [""]


def _held_to_aws() -> list[str]:
    """The model's scaling rules beside published measurements of real AWS (``planner.measured``)."""
    from planner.measured import TOLERANCE, measurements

    md = ["## 6. The model held to AWS as others measured it", ""]
    md += [
        f"Each row: a published experiment on real AWS, the model's prediction of the same experiment (computed "
        f"from planner/aws.py, not from the measurement) and the difference; beyond {TOLERANCE:.0%} the row says "
        "why.",
        "",
    ]
    rows = [
        [
            m.rule,
            m.experiment,
            f"{m.measured:g} {m.unit}",
            f"{m.predicted:.4g} {m.unit}",
            f"{m.difference:+.0%}",
            "within" if m.holds else m.why_off,
            m.source,
        ]
        for m in measurements()
    ]
    md += md_table(["rule", "experiment", "measured", "model", "difference", "verdict", "source"], rows) + [""]
    md += [
        "Not found published with numbers: provisioned-mode ramp-up, Lambda Managed Instances scaling, an end-to-end "
        "ECS target-tracking timeline on an SQS backlog (metric lag, 3 datapoints, task start); the model's rules "
        "for these rest on the AWS documentation alone.",
        "",
    ]
    return md


def write(
    outdir: Path,
    runs: dict[str, dict[str, Any]],
    dirs: dict[str, Path],
    worker_rows: list[list[Any]] | None,
) -> dict[str, Any]:
    """comparison.json, comparison.md and the charts; ``worker_rows``: the measured worker table, or None."""
    prices, a = Prices.load(), Assumptions()
    costs, even = cost_by_volume(prices, a)
    predictions = aws_predictions(prices, a, 1_000_000)
    comparison = {
        "runs": runs,
        "cost_per_month": costs,
        "break_even_orders_per_month": even,
        "aws_predictions": predictions,
        "assumptions": assumptions_table(a),
        "prices_read_on": prices.read_on,
    }
    (outdir / "comparison.json").write_text(json.dumps(comparison, indent=2, default=str) + "\n")
    names = charts(outdir, runs, dirs, even, prices, a)
    md = [
        *_measured(runs),
        *_aws(predictions),
        *_cost(prices, a, costs, even),
        *_failures(runs),
        *_source_sync(runs),
        *_source_workers(worker_rows),
        *_source_queue(),
        *_source_cold_starts(runs),
        *_source_cost(prices, a),
        *_held_to_aws(),
        *_answer(costs),
        *(f"![{n}]({n})" for n in names),
    ]
    (outdir / "comparison.md").write_text("\n".join(md) + "\n")
    return comparison
