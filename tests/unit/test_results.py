"""The results package: a run's summary is a pure function of what it measured (hand-built inputs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from planner.config import resolve
from planner.model import Timing, Workload
from sandbox.results.report import report_dir, terminal_summary
from sandbox.results.summary import Observed, RunSetup, Timeline, chaos_summary, classify_dlq, summarize
from sandbox.results.tables import md_table
from sandbox.runs.chaos import ChaosRecord, PoisonClock, is_poison

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def stamp(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def order(n: int, status: str, created_s: float, updated_s: float | None = None) -> dict[str, Any]:
    return {
        "order_id": f"o-{n}",
        "status": status,
        "created_at": stamp(created_s),
        "updated_at": stamp(updated_s if updated_s is not None else created_s),
    }


def setup() -> RunSetup:
    cfg = resolve({"compute": "ecs"})
    return RunSetup(
        compute="ecs",
        scenario="flash",
        time_scale=2.0,
        users=5,
        phase_s=10.0,
        config=cfg,
        workload=Workload.from_config(cfg, "ecs"),
        timing=Timing.sandbox(2.0),
        slots=5,
        sync_latency_s=1.5,
    )


def timeline() -> Timeline:
    return Timeline(
        t0_wall=T0.timestamp(),
        async_start_wall=stamp(10),
        sync_start=0.0,
        sync_end=10.0,
        async_start=10.0,
        load_end=20.0,
        drained=30.0,
    )


def observed(orders: list[dict[str, Any]], *, dead: set[str] | None = None, end_backlog: int = 4) -> Observed:
    rows = [
        {"t": float(t), "visible": v, "inflight": 0.0, "dlq": 0.0, "workers": 1.0, "accepted": 0.0}
        for t, v in ((10, 0), (15, 7), (20, 4), (30, 0))
    ]
    stats = {"p50_ms": 10.0, "p99_ms": 20.0, "failures": 0}
    return Observed(
        orders=orders,
        rows=rows,
        accepted=sum(1 for o in orders if o["created_at"] >= stamp(10)),
        rejected=0,
        async_stats=stats,
        sync_stats={"p50_ms": 1500.0, "p99_ms": 1600.0},
        dead=dead or set(),
        unnamed_in_dlq=0,
        end_backlog=end_backlog,
        drained=True,
        peak_workers=1,
        ledger={"charges": 3, "double_charges": 0, "replays": 0, "declines": 0},
    )


def test_the_summary_counts_each_order_once_by_its_path_and_state() -> None:
    # GIVEN two sync orders, then async ones: paid, failed, stuck, dead-lettered, and a 5xx (REJECTED)
    orders = [
        order(1, "PAID", 1, 2.5),
        order(2, "PAID", 4, 5.5),
        order(3, "PAID", 11, 14),
        order(4, "PAYMENT_FAILED", 12, 15),
        order(5, "PLACED", 13),
        order(6, "PLACED", 14),
        order(7, "REJECTED", 15),
    ]
    s = summarize(setup(), timeline(), observed(orders, dead={"o-6"}))
    # THEN the sync path is left out of the async counts, the REJECTED order is no order, and only the
    # stuck order that is not in the DLQ is lost
    assert (s["paid"], s["payment_failed"], s["dead_lettered"], s["lost"]) == (1, 1, 1, 1)
    assert s["sync"]["orders"] == 2
    assert s["drain_seconds"] == pytest.approx(10.0) and s["drain_seconds_real"] == pytest.approx(20.0)
    assert s["peak_queue_depth"] == 7
    assert s["wait_s"]["p50"] == pytest.approx(3.0)
    assert s["timeline"] == {
        "sync_start": 0.0,
        "sync_end": 10.0,
        "async_start": 10.0,
        "load_end": 20.0,
        "drained": 30.0,
    }
    assert s["model"]["inputs"]["arrivals"] == 4  # the model sees the async arrivals only


def test_sold_out_answers_count_as_the_api_keeping_up_but_not_as_orders() -> None:
    """GIVEN an async sale whose scarce SKU sells out halfway: orders accepted at 1/s for 5 s, then shoppers told
    "sold out" at 1/s (and a sync shopper told so, and a retry told so twice) WHEN summarized THEN the accept rate
    counts the orders, the answer rate both, and the sized accept bar is judged on the answers."""
    from sandbox.results.money import sold_out_answers
    from sandbox.results.report import accept_bar

    told = [
        {"path": "/orders", "answers": [{"status": 409, "error": "sold_out", "at": stamp(s)}]} for s in range(16, 20)
    ]
    told.append({"path": "/orders/sync", "answers": [{"status": 409, "error": "sold_out", "at": stamp(3)}]})
    told.append(
        {
            "path": "/orders",
            "answers": [
                {"status": 0},
                {"status": 409, "error": "sold_out", "at": stamp(15)},
                {"status": 409, "error": "sold_out", "at": stamp(15.2)},
            ],
        }
    )
    answers = sold_out_answers(told, "/orders")
    assert sorted(answers) == [stamp(s) for s in range(15, 20)]  # one per checkout, the async path only
    orders = [order(n, "PAID", 10 + n, 11 + n) for n in range(5)]  # accepted at 10..14 s
    seen = observed(orders)
    s = summarize(setup(), timeline(), Observed(**{**seen.__dict__, "sold_out_at": answers}))
    assert s["async_accept_rate_per_s"] == pytest.approx(1.0)
    assert s["async_answer_rate_per_s"] == pytest.approx(1.0) and s["sold_out_answers"] == 5
    # Only the answers meet a sized sale of 1/s (90%: 0.9/s): 5 orders over 10 s would read 0.5/s.
    s = {**s, "sizing": {"arrival_per_s": 1.0}, "async_accept_rate_per_s": 0.5}
    accept = accept_bar(s)
    assert accept["met"] and accept["measured"] == "1.0/s" and accept["target"] == ">= 0.9/s"
    s["async_answer_rate_per_s"] = 0.8  # a slow API: 80% of what the sale offered
    assert not accept_bar(s)["met"]


def test_no_backlog_at_the_end_of_the_load_is_no_drain() -> None:
    s = summarize(setup(), timeline(), observed([order(1, "PAID", 11, 12)], end_backlog=0))
    assert s["drain_seconds"] == 0.0


def test_the_dlq_is_classified_into_good_orders_poison_and_the_rest() -> None:
    event = json.dumps({"event_type": "order_placed", "order_id": "o-9", "order": {}})
    bodies = [
        event,
        json.dumps({"chaos_poison": 1}),
        "not json",
        json.dumps({"Type": "Notification", "Message": event}),
    ]
    assert classify_dlq(bodies, is_poison) == ({"o-9"}, 1, 1)


def test_poison_spans_appear_only_once_every_attempted_poison_event_has_landed() -> None:
    clock = PoisonClock()
    clock.first_attempt("chaos_poison-1")
    clock.first_attempt("chaos_poison-2")
    clock.first_attempt("a good order")  # not poison: not timed
    clock.dead_lettered("chaos_poison-1")
    assert clock.spans() is None
    clock.dead_lettered("chaos_poison-2")
    spans = clock.spans()
    assert spans is not None and len(spans) == 2 and all(s >= 0 for s in spans)


def test_chaos_summary_bounds_poison_by_the_variants_retry_path() -> None:
    cfg = resolve({"compute": "ecs"})
    summary = {"time_scale": 2.0, "dead_lettered": 0, "lost": 0, "timeline": {"drained": 30.0}}
    rec = ChaosRecord()
    queue = chaos_summary(rec, summary, [], poison_in_dlq=0, config=cfg, decline_share=0.05, async_invoke=False)
    invoke = chaos_summary(
        rec, summary, [], poison_in_dlq=0, config=cfg, decline_share=0.05, async_invoke=True, poison_spans=[3.0, 4.5]
    )
    assert queue["poison_bound_s"] == pytest.approx((cfg.max_receive_count + 1) * cfg.visibility_timeout_s / 2)
    assert invoke["poison_in_dlq_after_s"] == 4.5
    assert invoke["poison_bound_s"] == pytest.approx(sum(60 * (n + 1) for n in range(cfg.sns_retry_attempts)) / 2 + 5)


def test_md_table() -> None:
    assert md_table(["a", "b"], [[1, "x"]]) == ["| a | b |", "|---|---|", "| 1 | x |"]


def test_report_dirs_are_stamped_and_hold_a_logs_folder(tmp_path: Path) -> None:
    d = report_dir(tmp_path, "ecs")
    assert d.parent == tmp_path and d.name.endswith("-ecs") and (d / "logs").is_dir()


def test_the_terminal_summary_says_which_bar_was_missed(tmp_path: Path) -> None:
    s = summarize(setup(), timeline(), observed([order(1, "PAID", 11, 12)]))
    s["bars"] = [
        {"bar": "lost = 0", "measured": "0", "target": "0", "met": True},
        {"bar": "drain vs model", "measured": "40%", "target": "<= 15%", "met": False},
    ]
    text = terminal_summary(s, tmp_path)
    assert "drain vs model" in text and "MISSED" in text and text.count("met") >= 1


def test_the_emulators_cost_is_counted_per_order_and_per_second():
    from sandbox.results.emulator import emulator_cost, merge

    control = {"sqs": {"ReceiveMessage": 30, "DeleteMessageBatch": 10}, "sns": {"Publish": 20}}
    data = {"dynamodb": {"TransactWriteItems": 10, "UpdateItem": 20}, "sqs": {"ReceiveMessage": 10}}
    cost = emulator_cost(merge(control, data), orders=10, seconds=4.0, top=2)
    assert cost["requests"] == 100 and cost["per_order"] == 10.0 and cost["per_second"] == 25.0
    assert cost["by_service_per_order"] == {"dynamodb": 3.0, "sns": 2.0, "sqs": 5.0}
    assert cost["top_per_order"] == {"sqs:ReceiveMessage": 4.0, "dynamodb:UpdateItem": 2.0}
    assert emulator_cost({}, orders=0, seconds=0)["per_order"] is None


def test_the_bottleneck_line_names_what_held_the_sale_back():
    from sandbox.results.emulator import bottleneck

    missed = [{"bar": "drain", "met": False}]
    cpu = {"cores": 2, "busy_share": 0.97, "outside_sandbox_cores": 0.0}
    # GIVEN every bar met: nothing to name
    assert bottleneck({"bars": [{"bar": "x", "met": True}], "cpu": cpu}) is None
    # THEN the serial DynamoDB emulator at a full core is named first, with what ran beside the sandbox
    busy_db = {**cpu, "by_role_cores": {"emulator: DynamoDB": 0.96, "lambda: worker_lambda": 0.5}}
    assert "DynamoDB emulator, at 0.96" in bottleneck({"bars": missed, "cpu": busy_db})
    beside = {**busy_db, "outside_sandbox_cores": 0.9}
    assert "0.90 cores went to processes outside the sandbox" in bottleneck({"bars": missed, "cpu": beside})
    # AND a saturated machine names its largest consumers; a quiet one with slow workers names the workers
    spread = {**cpu, "by_role_cores": {"lambda: worker_lambda": 0.8, "emulator: DynamoDB": 0.6}}
    assert "machine's CPU, 97% of 2 cores" in bottleneck({"bars": missed, "cpu": spread})
    quiet = {**spread, "busy_share": 0.4}
    assert "machine's CPU, 85%" in bottleneck({"bars": missed, "cpu": {**spread, "busy_share": 0.85}})
    slow = {"bars": missed, "cpu": quiet, "worker_efficiency": {"ratio": 0.5}}
    assert bottleneck(slow).startswith("bottleneck: the workers, at 0.50")
    assert "none found" in bottleneck({"bars": missed, "cpu": quiet})


def test_cpu_use_turns_jiffies_into_cores_by_role():
    from sandbox.runs.cpu import Snapshot, cpu_use, role_of

    assert role_of("python -m sandbox.emulator.server --port 4567", "4567") == "emulator: DynamoDB"
    assert role_of("python -m sandbox.emulator.server --port 1234", "4567") == "emulator: the other services"
    assert role_of("python -m sandbox.emulator.lambda_env orders.entrypoints.worker_lambda.handler x", "") == (
        "lambda: worker_lambda"
    )
    # GIVEN 10 s on 2 cores (2,000 jiffies), 1,500 of them busy: the DynamoDB emulator 900, a worker 300
    start = Snapshot(busy=0, total=0, processes={1: ("emulator: DynamoDB", 100), 2: ("lambda: worker", 0)})
    end = Snapshot(busy=1500, total=2000, processes={1: ("emulator: DynamoDB", 1000), 2: ("lambda: worker", 300)})
    use = cpu_use(start, end, cores=2)
    assert use["busy_share"] == 0.75 and use["cores_used"] == 1.5
    assert use["by_role_cores"] == {"emulator: DynamoDB": 0.9, "lambda: worker": 0.3}
    assert use["outside_sandbox_cores"] == 0.3
    assert cpu_use(None, end) is None


def test_demand_share_splits_the_sale_over_the_emulators_processes():
    from benchmarks.emulator_capacity import demand_share

    caps = {"dynamodb:GetItem": 400.0, "dynamodb:UpdateItem": 200.0, "sqs:SendMessage": 500.0}
    # 10 orders/s, each: 2 UpdateItems (200/s), 1 Query (unmeasured: DynamoDB's mean, 300/s), 5 receives (SQS 500/s)
    share = demand_share({"dynamodb:UpdateItem": 2, "dynamodb:Query": 1, "sqs:ReceiveMessage": 5}, caps, 10)
    assert share["DynamoDB process"] == 10 * 2 / 200 + 10 * 1 / 300
    assert share["the other process"] == 10 * 5 / 500
