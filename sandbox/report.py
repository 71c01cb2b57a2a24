"""summary.json, report.md and PNG charts for one sandbox run."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any


def predict_drain(
    rows: list[dict[str, float]], *, start: float, backlog: float, capacity: float, worker_limit: float
) -> float | None:
    """Seconds the workers that ran after ``start`` need to work off ``backlog`` at the measured capacity.

    Each sampled interval drains at min(workers x ``worker_limit``, ``capacity``): a worker can pay no
    faster than its payment slots allow, and the machine no faster than the capacity measured at the
    peak. So a scale-up still under way when the load stopped is part of the prediction, while
    stalls, stragglers and retries are not.
    """
    if backlog <= 0:
        return 0.0
    if capacity <= 0 or worker_limit <= 0:
        return None
    before = [r for r in rows if r["t"] <= start]
    timeline = [(start, before[-1]["workers"] if before else 0.0)] + [
        (r["t"], r["workers"]) for r in rows if r["t"] > start
    ]
    remaining = backlog
    for (t0, workers), (t1, _) in itertools.pairwise(timeline):
        rate = min(workers * worker_limit, capacity)
        if rate > 0 and rate * (t1 - t0) >= remaining:
            return t0 - start + remaining / rate
        remaining -= rate * (t1 - t0)
    t_last, workers = timeline[-1]
    rate = min(workers * worker_limit, capacity) or capacity
    return t_last - start + remaining / rate


def _charts(workdir: Path, summary: dict[str, Any], rows: list[dict[str, float]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return []
    t = [r["t"] for r in rows]
    tl = summary["timeline"]
    names = []

    def mark(ax: Any) -> None:
        for key, label in (("async_start", "async load"), ("load_end", "load ends"), ("drained", "drained")):
            ax.axvline(tl[key], color="grey", linestyle=":", linewidth=1)
            ax.text(tl[key], ax.get_ylim()[1] * 0.95, f" {label}", fontsize=7, color="grey")

    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(t, [r["visible"] for r in rows], label="waiting (visible)")
    ax.plot(t, [r["inflight"] for r in rows], label="in flight")
    ax.plot(t, [r["dlq"] for r in rows], label="dead-lettered")
    ax.set_xlabel(f"sandbox seconds (x{summary['time_scale']:g} = real seconds)")
    ax.set_ylabel("messages")
    ax.set_title(f"Queue depth ({summary['compute']})")
    ax.legend(fontsize=8)
    mark(ax)
    fig.tight_layout()
    fig.savefig(workdir / "queue_depth.png", dpi=110)
    plt.close(fig)
    names.append("queue_depth.png")

    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.step(t, [r["workers"] for r in rows], where="post")
    ax.set_xlabel("sandbox seconds")
    ax.set_ylabel("tasks" if summary["compute"] == "ecs" else "busy environments")
    ax.set_title("Running ECS tasks" if summary["compute"] == "ecs" else "Lambda environments in use")
    mark(ax)
    fig.tight_layout()
    fig.savefig(workdir / "workers.png", dpi=110)
    plt.close(fig)
    names.append("workers.png")

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
    mark(ax)
    fig.tight_layout()
    fig.savefig(workdir / "throughput.png", dpi=110)
    plt.close(fig)
    names.append("throughput.png")
    return names


def headline(summary: dict[str, Any]) -> list[tuple[str, str]]:
    s, k = summary, summary["time_scale"]
    sync = s["sync"]
    pred = s["predicted_drain_seconds"]
    rows = [
        ("compute", s["compute"]),
        ("time scale", f"x{k:g} (payment latency, cooldowns and durations {k:g}x shorter)"),
        ("async accepted / rejected", f"{s['accepted']} / {s['rejected']}"),
        ("async accept rate", f"{s['async_accept_rate_per_s']:.1f} orders/s (API path is not time-scaled)"),
        ("accept latency p50 / p99", f"{s['accept_latency_ms']['p50']:.0f} / {s['accept_latency_ms']['p99']:.0f} ms"),
        (
            "sync orders (same run)",
            f"{sync['orders']} at {sync['throughput_per_s']:.2f}/s sandbox "
            f"(limit {sync['limit_per_s']:.2f}/s) = {sync['throughput_per_s_real']:.2f}/s real",
        ),
        (
            "sync latency p50 / p99 (real)",
            f"{sync['latency_ms_real']['p50']:.0f} / {sync['latency_ms_real']['p99']:.0f} ms",
        ),
        (
            "async : sync throughput (real time)",
            f"{s['async_to_sync_ratio_real']:.1f}x" if s["async_to_sync_ratio_real"] else "n/a",
        ),
        ("paid / payment failed / dead-lettered", f"{s['paid']} / {s['payment_failed']} / {s['dead_lettered']}"),
        ("lost", str(s["lost"])),
        ("peak queue depth", str(s["peak_queue_depth"])),
        ("backlog when load stopped", str(s["backlog_at_load_end"])),
        (
            "drain: measured / predicted (sandbox s)",
            f"{s['drain_seconds']:.1f} / {pred:.1f} ({s['predicted_drain_seconds_at_peak']:.1f} at peak throughout)"
            if pred is not None
            else f"{s['drain_seconds']:.1f} / n/a",
        ),
        (
            "capacity during the drain (sandbox)",
            f"{s['processing_capacity_per_s']:.1f} orders/s with {s['capacity_workers']:.0f} workers "
            f"(their slots allow {s['capacity_workers'] * s['worker_limit_per_s']:.1f}/s)",
        ),
        ("drain time (real)", f"{s['drain_seconds_real']:.0f} s"),
        ("max workers", str(s["max_workers"])),
    ]
    if "cold_starts" in s:
        rows.append(
            (
                "cold starts / init p50 / max",
                f"{s['cold_starts']} / {s['init_ms']['p50']:.0f} / {s['init_ms']['max']:.0f} ms",
            )
        )
    if "scaling" in s:
        rows.append(("tasks implied by peak backlog", str(s["scaling"]["tasks_implied_by_peak_backlog"])))
    return rows


def bars(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The project's bars, each with the measured figure it is judged on (None: not measurable in this run)."""
    s, sync = summary, summary["sync"]
    pred, ratio = s["predicted_drain_seconds"], s["async_to_sync_ratio_real"]
    sync_share = sync["throughput_per_s"] / sync["limit_per_s"] if sync["limit_per_s"] else None
    drain_error = abs(s["drain_seconds"] / pred - 1) if pred else None
    out = [
        {"bar": "lost orders", "target": "0", "measured": str(s["lost"]), "met": s["lost"] == 0},
        {
            "bar": "async accepts per sync order (real time)",
            "target": ">= 25x",
            "measured": f"{ratio:.1f}x" if ratio else "n/a",
            "met": ratio is not None and ratio >= 25,
        },
        {
            "bar": "sync throughput vs slots/latency",
            "target": "within 5%",
            "measured": f"{sync_share:.1%}" if sync_share is not None else "n/a",
            "met": sync_share is not None and abs(sync_share - 1) <= 0.05,
        },
        {
            "bar": "drain vs backlog / measured capacity",
            "target": "within 10%",
            "measured": f"{drain_error:.1%} off" if drain_error is not None else "n/a",
            "met": drain_error is not None and drain_error <= 0.10,
        },
    ]
    if "scaling" in s:
        implied = min(s["scaling"]["tasks_implied_by_peak_backlog"], s["scaling"]["max_tasks"])
        out.append(
            {
                "bar": "tasks reached vs tasks the policy implies for the peak backlog",
                "target": f">= {implied}",
                "measured": str(s["max_workers"]),
                "met": s["max_workers"] >= implied,
            }
        )
    if "concurrency_limit" in s:
        out.append(
            {
                "bar": "environments vs reserved concurrency",
                "target": f"<= {s['concurrency_limit']}",
                "measured": str(s["max_workers"]),
                "met": s["max_workers"] <= s["concurrency_limit"],
            }
        )
    return out


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
    ]
    lines += ["## Bars", "", "| bar | target | measured | |", "|---|---|---|---|"]
    lines += [
        f"| {b['bar']} | {b['target']} | {b['measured']} | {'met' if b['met'] else 'MISSED'} |" for b in summary["bars"]
    ]
    lines += [""]
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
