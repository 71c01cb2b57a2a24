"""summary.json, report.md and PNG charts for one sandbox run."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.results import metrics
from sandbox.results.emulator import bottleneck
from sandbox.results.money import money_bars
from sandbox.results.stock import stock_bars


def _charts(workdir: Path, summary: dict[str, Any], rows: list[dict[str, float]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return []
    t = [r["t"] for r in rows]
    tl = summary["timeline"]
    names = []

    def save(fig: Any, ax: Any, name: str) -> str:
        """Mark the phases, write the chart, return its file name."""
        for key, label in (("async_start", "async load"), ("load_end", "load ends"), ("drained", "drained")):
            ax.axvline(tl[key], color="grey", linestyle=":", linewidth=1)
            ax.text(tl[key], ax.get_ylim()[1] * 0.95, f" {label}", fontsize=7, color="grey")
        fig.tight_layout()
        fig.savefig(workdir / name, dpi=110)
        plt.close(fig)
        return name

    model = summary.get("model", {}).get("series") or {}
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(t, [r["visible"] for r in rows], label="waiting (visible)", color="C0")
    ax.plot(t, [r["inflight"] for r in rows], label="in flight", color="C1")
    ax.plot(t, [r["dlq"] for r in rows], label="dead-lettered", color="C2")
    if model:  # the planner's prediction of this run, from its arrivals: a miss is seen, not only read
        ax.plot(model["t"], model["visible"], "--", color="C0", linewidth=1, label="waiting, model")
        ax.plot(model["t"], model["inflight"], "--", color="C1", linewidth=1, label="in flight, model")
    ax.set_xlabel(f"sandbox seconds (x{summary['time_scale']:g} = real seconds)")
    ax.set_ylabel("messages")
    ax.set_title(f"Queue depth ({summary['compute']})")
    ax.legend(fontsize=8)
    names.append(save(fig, ax, "queue_depth.png"))

    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.step(t, [r["workers"] for r in rows], where="post", label="measured")
    if model:
        ax.step(model["t"], model["workers"], "--", where="post", linewidth=1, label="model")
        ax.legend(fontsize=8)
    ax.set_xlabel("sandbox seconds")
    ax.set_ylabel("tasks" if summary["compute"] == "ecs" else "busy environments")
    ax.set_title("Running ECS tasks" if summary["compute"] == "ecs" else "Lambda environments in use")
    names.append(save(fig, ax, "workers.png"))

    fig, ax = plt.subplots(figsize=(8, 3.2))
    done = [r["accepted"] - r["visible"] - r["inflight"] - r["dlq"] for r in rows]

    def rate(series: list[float]) -> list[float]:
        return [0.0] + [
            max(0.0, (series[i] - series[i - 1]) / max(1e-9, t[i] - t[i - 1])) for i in range(1, len(series))
        ]

    ax.plot(t, rate([r["accepted"] for r in rows]), label="accepted/s")
    ax.plot(t, rate(done), label="processed/s")
    ax.set_xlabel("sandbox seconds")
    ax.set_ylabel("orders per sandbox second")
    ax.set_title("Accepted vs processed")
    ax.legend(fontsize=8)
    names.append(save(fig, ax, "throughput.png"))
    return names


def fmt_or_na(x: float | None, fmt: str = "{:.1f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def headline(summary: dict[str, Any]) -> list[tuple[str, str]]:
    s, k = summary, summary["time_scale"]
    sync = s["sync"]
    eff = s.get("worker_efficiency")
    rows = [
        ("compute", s["compute"]),
        ("time scale", f"x{k:g} (payment latency, cooldowns, metric period and durations {k:g}x shorter)"),
        ("async accepted / rejected", f"{s['accepted']} / {s['rejected']}"),
        ("async accept rate", f"{s['async_accept_rate_per_s']:.1f} orders/s (API path is not time-scaled)"),
        (
            "async answers: accepted or sold out",
            f"{s.get('async_answer_rate_per_s', s['async_accept_rate_per_s']):.1f}/s "
            f"({s.get('sold_out_answers', 0)} told sold out)",
        ),
        ("accept latency p50 / p99", f"{s['accept_latency_ms']['p50']:.0f} / {s['accept_latency_ms']['p99']:.0f} ms"),
        (
            "sync orders (same run)",
            f"{sync['orders']} at {sync['throughput_per_s']:.2f}/s sandbox "
            f"(users in flight / latency {sync['limit_per_s']:.2f}/s) = {sync['throughput_per_s_real']:.2f}/s real",
        ),
        (
            "sync latency p50 / p99 (real)",
            f"{sync['latency_ms_real']['p50']:.0f} / {sync['latency_ms_real']['p99']:.0f} ms",
        ),
        ("async : sync throughput (real time)", fmt_or_na(s["async_to_sync_ratio_real"], "{:.1f}x")),
        ("paid / payment failed / dead-lettered", f"{s['paid']} / {s['payment_failed']} / {s['dead_lettered']}"),
        ("lost", str(s["lost"])),
        ("charges / double charges (processor ledger)", f"{s['charges']} / {s['double_charges']}"),
        ("backlog when load stopped", str(s["backlog_at_load_end"])),
        ("drain time (real)", f"{s['drain_seconds_real']:.0f} s"),
        (
            "worker efficiency during the drain",
            f"{eff['paid_per_s']:.1f} paid/s of {eff['allowed_per_s']:.1f}/s the running workers' slots allow "
            f"with the emulator's request time ({eff['ratio']:.2f}; on payments alone "
            f"{fmt_or_na(eff.get('ratio_payments_only'), '{:.2f}')})"
            if eff
            else "n/a",
        ),
    ]
    if "tracking" in s:
        t = s["tracking"]
        rows.append(
            (
                "tracking: clients / reconnects / missed after reconnect / duplicates dropped",
                f"{t['clients']} / {t['reconnects']} / {t['missed_after_reconnect']} / {t['duplicates']}",
            )
        )
        lat = t["push_latency_ms"]
        rows.append(
            (
                "tracking: PAID written -> client (live pushes)",
                f"p50 {lat['p50']:.0f} ms, p99 {lat['p99']:.0f} ms ({lat['samples']} pushes; not time-scaled)",
            )
        )
    for name, run in (s.get("schedules") or {}).items():
        if run.get("not_fired"):
            rows.append((f"schedule {name}", "not fired by the sandbox"))
            continue
        counts = ", ".join(f"{k} {v}" for k, v in run.items() if k not in ("period_s", "runs", "errors"))
        rows.append(
            (
                f"schedule {name} (every {run['period_s']:g} s)",
                f"{run['runs']} runs, {run['errors']} failed" + (f"; {counts}" if counts else ""),
            )
        )
    inv = s.get("invocations") or {}
    if inv.get("count") and "model_beyond_payment_ms" in inv:
        rows.append(
            (
                "invoke time beyond the payment, median of whole-batch invokes: measured / its requests (model)",
                f"{inv['beyond_payment_ms']:.0f} / {inv['model_beyond_payment_ms']:.0f} ms "
                f"({inv['count']} invokes of {inv['mean_records']:g} records)",
            )
        )
    if "request_overhead" in s:
        o = s["request_overhead"]
        rows.append(
            (
                "emulator requests per record / per Lambda invocation (timed before the sale)",
                f"{o['record_ms']:.0f} / {o['invocation_ms']:.0f} ms",
            )
        )
    if "cold_starts" in s:
        rows.append(
            (
                "cold starts / init p50 / max",
                f"{s['cold_starts']} / {s['init_ms']['p50']:.0f} / {s['init_ms']['max']:.0f} ms",
            )
        )
    return rows


MODEL_FIGURES = (
    ("peak queue depth", "peak_queue_depth", "peak_backlog", "{:.0f}"),
    ("drain (sandbox s)", "drain_seconds", "drain_seconds", "{:.1f}"),
    ("peak workers", "max_workers", "peak_workers", "{:.0f}"),
    ("first scale-out after the load starts (sandbox s)", "first_scale_out_s", "first_scale_out_s", "{:.1f}"),
)
MODEL_TOLERANCE = 0.15
API_FLASH_DEMAND = 47.0  # orders/s: the low end of the source's flash-sale demand


def model_rows(summary: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    m = summary["model"]
    out = []
    for label, measured_key, model_key, fmt in MODEL_FIGURES:
        measured, model = summary.get(measured_key), m.get(model_key)
        off = metrics.off_by(measured, model)
        out.append((label, fmt_or_na(measured, fmt), fmt_or_na(model, fmt), fmt_or_na(off, "{:.1%}")))
    out.append(("order wait p50 (sandbox s)", fmt_or_na(summary["wait_s"]["p50"]), fmt_or_na(m["wait_p50_s"]), ""))
    out.append(("order wait p99 (sandbox s)", fmt_or_na(summary["wait_s"]["p99"]), fmt_or_na(m["wait_p99_s"]), ""))
    return out


def bar(name: str, target: str, measured: str, met: bool) -> dict[str, Any]:
    """One bar as the report, the terminal and summary.json carry it."""
    return {"bar": name, "target": target, "measured": measured, "met": met}


def zero(name: str, count: int) -> dict[str, Any]:
    return bar(name, "0", str(count), count == 0)


def bars(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The bars, each judged on measured figures against an independent limit or the model (None: not measurable)."""
    s = summary
    faults = float(s["config"].get("paymentFailureRate", 0)) > 0
    accounted = s["paid"] + s["payment_failed"] + s["dead_lettered"]
    out = [
        zero("lost orders", s["lost"]),
        bar(
            "every accepted order accounted for (paid + failed + dead-lettered)",
            str(s["accepted"]),
            str(accounted),
            accounted == s["accepted"],
        ),
        zero("double charges at the processor", s["double_charges"]),
        accept_bar(s),
    ]
    if not faults:
        out.append(zero("dead-lettered with no faults configured", s["dead_lettered"]))
    if "money" in s:
        out += [zero(name, count) for name, count in money_bars(s["money"])]
    if "stock" in s:
        out += [bar(name, target, measured, met) for name, target, measured, met in stock_bars(s["stock"])]
    for name, run in (s.get("schedules") or {}).items():
        if not run.get("not_fired"):
            out.append(zero(f"schedule {name}: runs that failed", int(run["errors"])))
    if "tracking" in s:
        out += tracking_bars(s)
    if "chaos" in s:
        return out + chaos_bars(s)
    return out + model_bars(s)


SIZED_ACCEPT_SHARE = 0.9  # of a sized sale's arrival rate the API must take


def accept_bar(s: dict[str, Any]) -> dict[str, Any]:
    """The API keeps up with what the sale offers: a sized sale's arrival rate, else the source's flash demand.

    Counted: orders accepted and shoppers told "sold out", both the API keeping up (older summaries have the
    accepted rate only)."""
    rate = s.get("async_answer_rate_per_s", s["async_accept_rate_per_s"])
    sized = s.get("sizing")
    if sized:
        want = sized["arrival_per_s"] * SIZED_ACCEPT_SHARE
        name = "API answers (accepted or sold out) vs the sale's arrival rate (sized to this machine)"
        return bar(name, f">= {want:.1f}/s", f"{rate:.1f}/s", rate >= want)
    return bar(
        "API answers (accepted or sold out) vs the source's flash demand",
        f">= {API_FLASH_DEMAND:g}/s",
        f"{rate:.1f}/s",
        rate >= API_FLASH_DEMAND,
    )


def model_bars(s: dict[str, Any]) -> list[dict[str, Any]]:
    """The run against the planner's prediction of it, and the workers against their slots' limit."""
    out = []
    for label, measured_key, model_key, fmt in MODEL_FIGURES:
        model = s["model"].get(model_key)
        if model_key == "first_scale_out_s" and s["compute"] != "ecs":
            continue  # Lambda has no scaling decision to time: environments start on demand
        off = metrics.off_by(s.get(measured_key), model)
        out.append(
            bar(
                f"{label} vs the model",
                f"within {MODEL_TOLERANCE:.0%} of {fmt_or_na(model, fmt)}",
                f"{fmt_or_na(s.get(measured_key), fmt)} ({fmt_or_na(off, '{:.1%}')} off)",
                off is not None and off <= MODEL_TOLERANCE,
            )
        )
    eff = s.get("worker_efficiency")
    out.append(
        bar(
            "worker efficiency during the drain (paid/s over running workers x their slots' limit, "
            "with the request time timed before the sale)",
            ">= 0.85",
            f"{eff['ratio']:.2f}" if eff else "n/a",
            eff is not None and eff["ratio"] >= 0.85,
        )
    )
    return out


TRACKING_MIN = {"clients": 20, "reconnects": 3, "samples": 20}  # what a sale must track for its figures to mean much


def tracking_bars(s: dict[str, Any]) -> list[dict[str, Any]]:
    t = s["tracking"]
    return [
        zero("tracking: events missed after a reconnect (catch-up)", t["missed_after_reconnect"]),
        bar(
            "tracking: clients that reconnected (so the catch-up was exercised)",
            f">= {TRACKING_MIN['reconnects']}",
            str(t["reconnects"]),
            t["reconnects"] >= TRACKING_MIN["reconnects"],
        ),
        bar(
            "tracking: orders tracked to the end, and live pushes timed (enough to measure)",
            f">= {TRACKING_MIN['clients']} and >= {TRACKING_MIN['samples']}",
            f"{t['clients']} and {t['push_latency_ms']['samples']}",
            t["clients"] >= TRACKING_MIN["clients"] and t["push_latency_ms"]["samples"] >= TRACKING_MIN["samples"],
        ),
    ]


def chaos_bars(s: dict[str, Any]) -> list[dict[str, Any]]:
    """Under faults the model's timing does not apply; what must hold is that nothing is lost or paid twice."""
    c = s["chaos"]
    landed, bound = c["poison_in_dlq_after_s"], c["poison_bound_s"]
    return [
        bar(
            "poison messages in the DLQ",
            str(c["poison_sent"]),
            str(c["poison_dead_lettered"]),
            c["poison_dead_lettered"] == c["poison_sent"],
        ),
        bar(
            "poison in the DLQ within its retries' bound (sandbox s)",
            f"<= {bound:.0f}",
            fmt_or_na(landed),
            landed is not None and landed <= bound,
        ),
        zero("good orders stuck (not terminal, not in the DLQ)", c["good_orders_stuck"]),
        *(
            [zero("healthy orders dead-lettered (a processor outage ridden out)", c["healthy_orders_dead_lettered"])]
            if c.get("processor_outage_s")
            else []
        ),
        bar("workers killed mid-payment", ">= 1", str(c["kills"]), c["kills"] >= 1),
    ]


def write(workdir: Path, summary: dict[str, Any], rows: list[dict[str, float]]) -> None:
    summary["bars"] = bars(summary)
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (workdir / "samples.json").write_text(json.dumps(rows) + "\n")
    charts = _charts(workdir, summary, rows)
    lines = [f"# Flash-sale sandbox report: {summary['compute']}", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in headline(summary)]
    lines += [
        "",
        "Every figure is measured in this run (see `summary.json`); sandbox seconds x time scale = real seconds.",
        "",
        "## Measured vs the model",
        "",
        "The model (`planner/`) predicts this run from its arrival log and the deployed config alone,",
        "with workers paying at their payment slots' limit and scaling as `planner.aws` says AWS scales.",
        "",
        "| figure | measured | model | off |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in model_rows(summary)]
    lines += [""]
    lines += ["## Bars", "", "| bar | target | measured | |", "|---|---|---|---|"]
    lines += [
        f"| {b['bar']} | {b['target']} | {b['measured']} | {'met' if b['met'] else 'MISSED'} |" for b in summary["bars"]
    ]
    lines += [""]
    if summary.get("stock"):
        lines += [
            "## Stock",
            "",
            "Counted twice: the catalog's shard counters, and the units held by orders that did not fail.",
            "",
            "| SKU | initial | sold | released | left | held by orders | oversold | sold-out answers |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {sku} | {x['initial']} | {x['sold']} | {x['released']} | {x['left']} | {x['held_by_orders']} "
            f"| {x['oversold']} | {x['sold_out_answers']} |"
            for sku, x in summary["stock"].items()
        ]
        lines += [""]
    if summary.get("sizing"):
        lines += [
            "## The sale, sized to this machine",
            "",
            f"{sizing_line(summary['sizing'])[0].upper()}{sizing_line(summary['sizing'])[1:]}.",
            "",
        ]
    if summary.get("emulator"):
        lines += emulator_section(summary["emulator"])
    if summary.get("cpu"):
        lines += ["## Where the CPU went", "", f"{cpu_line(summary['cpu'])}.", ""]
        limit = bottleneck(summary)
        lines += [f"{limit[0].upper()}{limit[1:]}.", ""] if limit else []
    if "chaos" in summary:
        c = summary["chaos"]
        lines += [
            "## Chaos",
            "",
            f"- kills: {c['kills']} workers in {len(c['kill_waves'])} waves at "
            + ", ".join(f"t={w['t']:.1f}s ({w['killed']})" for w in c["kill_waves"]),
            f"- transient payment failures: {c['payment_failure_rate']:.0%}; declined cards: {c['decline_share']:.0%}",
            "- processor outage: "
            + (
                f"down from t={c['processor_outage_s'][0]:.1f}s to t={c['processor_outage_s'][1]:.1f}s; "
                f"healthy orders dead-lettered: {c['healthy_orders_dead_lettered']}"
                if c.get("processor_outage_s")
                else "none"
            ),
            f"- poison sent: {c['poison_sent']} ({c['poison_sent_to']}); in the DLQ: {c['poison_dead_lettered']}, "
            f"all there after {fmt_or_na(c['poison_in_dlq_after_s'])} s (bound {c['poison_bound_s']:.0f} s)",
            f"- charges / double charges at the processor: {summary['charges']} / {summary['double_charges']}",
            f"- recovery (last fault to empty backlog): {fmt_or_na(c['recovery_seconds'])} s",
            "- `python -m orders.redrive show` on the DLQ: "
            + ", ".join(f"{reason}: {n}" for reason, n in c.get("redrive_show", {}).items()),
            "",
        ]
    if "scaling" in summary:
        lines += (
            ["## Scaling activities", ""]
            + [
                f"- t={a['t']:.1f}s: {a['from']} -> {a['to']} tasks ({a['why']})"
                for a in summary["scaling"]["activities"]
            ]
            + [""]
        )
    lines += [f"![{name}]({name})" for name in charts]
    (workdir / "report.md").write_text("\n".join(lines) + "\n")


def emulator_line(e: dict[str, Any]) -> str:
    by = ", ".join(f"{s} {n}" for s, n in e["by_service_per_order"].items())
    return f"{e['per_order']} requests per accepted order ({by}); {e['per_second']} requests/s over {e['seconds']} s"


def cpu_line(c: dict[str, Any]) -> str:
    roles = ", ".join(f"{role} {used:.2f}" for role, used in c["by_role_cores"].items() if used >= 0.05)
    return (
        f"{c['busy_share']:.0%} of {c['cores']} cores busy during the async sale and drain; cores by role: {roles}; "
        f"outside the sandbox {c['outside_sandbox_cores']:.2f}"
    )


def sizing_line(z: dict[str, Any]) -> str:
    caps = ", ".join(f"{k}={v}" for k, v in z["context"].items())
    need = API_FLASH_DEMAND / z["capacity_per_s"]
    return (
        f"sized to this machine: {z['free_cores']} free cores x {z['share']:.0%} / {z['cpu_ms_per_order']} ms CPU per "
        f"order = {z['arrival_per_s']} orders/s ({z['users']} users at {z['per_user_rate']}/s each); workers {caps} "
        f"({z['worker_capacity_per_s']} paid/s); calibrated on {z['basis']}. The source's {API_FLASH_DEMAND:g} "
        f"orders/s would need {need:.0f}x this machine's sale capacity"
    )


def emulator_section(e: dict[str, Any]) -> list[str]:
    """What the sale asked of the emulator (its processes count what they serve): the hot path's cost here."""
    lines = ["## What the emulator served", "", f"From the async sale's start to the drain: {emulator_line(e)}.", ""]
    lines += ["| operation | requests per order |", "|---|---|"]
    lines += [f"| {op} | {n} |" for op, n in e["top_per_order"].items()]
    return [*lines, ""]


def report_dir(root: Path, name: str) -> Path:
    """A new report folder, ``<root>/<UTC stamp>-<name>/`` with its ``logs/``: one per run or command."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = root / f"{stamp}-{name}"
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    return workdir


def terminal_summary(summary: dict[str, Any], workdir: Path) -> str:
    """What `make sandbox` prints at the end: the headline, measured against the model, the bars."""
    lines = [""]
    head = headline(summary)
    width = max(len(k) for k, _ in head)
    lines += [f"{key:<{width}}  {value}" for key, value in head]
    lines += ["", "measured vs the model (planner/, from the arrival log and the deployed config)"]
    rows = model_rows(summary)
    width = max(len(r[0]) for r in rows)
    lines += [f"  {label:<{width}}  {measured:>8}  model {model:>8}  {off}" for label, measured, model, off in rows]
    lines += ["", "bars"]
    width = max(len(b["bar"]) for b in summary["bars"])
    for bar in summary["bars"]:
        verdict = "met" if bar["met"] else "MISSED"
        lines.append(f"  {bar['bar']:<{width}}  {bar['measured']:>9}  target {bar['target']:<11} {verdict}")
    if summary.get("sizing"):
        lines += ["", sizing_line(summary["sizing"])]
    if summary.get("emulator"):
        lines += ["", f"emulator: {emulator_line(summary['emulator'])}"]
    if summary.get("cpu"):
        lines.append(f"cpu: {cpu_line(summary['cpu'])}")
    limit = bottleneck(summary)
    if limit:
        lines.append(limit)
    lines.append(f"\nreport: {workdir}/report.md")
    return "\n".join(lines)
