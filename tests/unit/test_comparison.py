"""The comparison document from hand-built runs: the contract keys, every section, the charts."""

from __future__ import annotations

import json
from pathlib import Path

from sandbox.results.comparison import write
from sandbox.results.report import bars
from sandbox.results.summary import summarize
from tests.unit.test_results import observed, order, setup, timeline


def run(variant: str, folder: Path) -> dict:
    s = summarize(setup(), timeline(), observed([order(1, "PAID", 11, 12), order(2, "PAID", 1, 2)]))
    s["compute"] = variant
    s["bars"] = bars(s)
    s.update(cold_starts=3, init_ms={"p50": 600.0, "max": 900.0})
    folder.mkdir()
    (folder / "samples.json").write_text(json.dumps(observed([]).rows))
    return s


def test_the_comparison_holds_the_contract_keys_every_section_and_its_charts(tmp_path: Path) -> None:
    variants = ("ecs", "lambda-sqs", "lambda-sns")
    dirs = {v: tmp_path / v for v in variants}
    runs = {v: run(v, dirs[v]) for v in variants}
    out = tmp_path / "compare"
    out.mkdir()
    comparison = write(out, runs, dirs, worker_rows=None)
    saved = json.loads((out / "comparison.json").read_text())
    assert set(saved) >= {"runs", "cost_per_month", "break_even_orders_per_month"}
    assert set(saved["runs"]) == set(variants) and comparison["runs"] == runs
    assert all(isinstance(usd, float) for by_volume in saved["cost_per_month"].values() for usd in by_volume.values())
    assert set(saved["break_even_orders_per_month"]) == {
        "lambda-sqs_vs_ecs",
        "lambda-sqs-provisioned_vs_ecs",
        "lambda-sns_vs_ecs",
        "lambda-mi_vs_ecs",
    }
    md = (out / "comparison.md").read_text()
    for section in ("## 1. Measured", "## 2. Predicted on AWS", "## 3. Cost by volume", "## 4. Failure", "## 5."):
        assert section in md
    assert "(skipped: --no-worker-table)" in md
    for chart in ("backlog.png", "workers.png", "paid.png", "cost.png"):
        assert (out / chart).stat().st_size > 0 and f"![{chart}]({chart})" in md
