"""A sale sized to the machine: arrivals from the CPU an order costs here, workers slower than the arrivals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.config import resolve
from sandbox.stack import sizing


def cfg(**context: str):
    return resolve({"compute": "lambda", **context})


def test_arrivals_take_the_stated_share_of_the_free_cores_and_workers_half_of_that():
    cal = sizing.Calibration("lambda-sqs", cpu_s_per_order=0.5, basis="test")
    # GIVEN 2 free cores and 0.5 CPU s per order: 2 x 0.6 / 0.5 = 2.4 orders/s
    sized = sizing.size("lambda-sqs", cal, cfg(), users=10, cores=2.0)
    assert sized.arrival_per_s == pytest.approx(2.4)
    # of which the tracking shoppers place 1.5/s (at most 70%), the 10 sale users the rest
    assert sized.tracked_per_s == pytest.approx(1.5) and sized.per_user_rate == pytest.approx(0.09)
    # a chaos sale runs no trackers: its 10 users place all 2.4/s
    alone = sizing.size("lambda-sqs", cal, cfg(), users=10, cores=2.0, tracking=False)
    assert alone.tracked_per_s == 0.0 and alone.per_user_rate == pytest.approx(0.24)
    # the user's worker caps fix the sale; maxConcurrency=0 (no maximum, provisioned pollers) does not
    assert sizing.fixes_the_sale({"reservedConcurrency": "5"}) and not sizing.fixes_the_sale({"maxConcurrency": "0"})
    # AND the sandbox's own idle load comes off the cores first
    idle = sizing.Calibration("lambda-sqs", cpu_s_per_order=0.5, basis="test", idle_cores=0.2)
    assert sizing.size("lambda-sqs", idle, cfg(), users=10, cores=2.0).arrival_per_s == pytest.approx(2.0)
    # THEN the workers pay about half of it (1.2/s): the largest batch that still needs 2 environments (the
    # mapping's minimum) is 2, at 2 / 3 s per environment
    assert sized.context == {"reservedConcurrency": "2", "maxConcurrency": "2", "batchSize": "2"}
    assert sized.worker_capacity_per_s == pytest.approx(4 / 3)
    assert sized.worker_capacity_per_s < sized.arrival_per_s  # a backlog builds during the load


def test_worker_caps_per_variant_respect_what_aws_allows():
    base = cfg()
    # lambda-sqs: never fewer than 2 environments (the event source mapping's maxConcurrency minimum)
    assert sizing.worker_caps("lambda-sqs", 0.1, base)[0]["maxConcurrency"] == "2"
    # a fast machine keeps the configured batch and adds environments
    caps, rate = sizing.worker_caps("lambda-sqs", 10.0, base)
    assert caps["batchSize"] == str(base.batch_size) and rate >= 8.0
    # ecs: whole tasks when they fit, else one task with fewer consumers
    assert sizing.worker_caps("ecs", 5.0, resolve({"compute": "ecs"}))[0] == {"maxTasks": "3"}
    assert sizing.worker_caps("ecs", 1.0, resolve({"compute": "ecs"}))[0] == {"maxTasks": "1", "workerConcurrency": "3"}
    # lambda-sns: one event per invoke, environments x 1 / latency
    assert sizing.worker_caps("lambda-sns", 1.0, base) == ({"reservedConcurrency": "3"}, 1.0)


def test_every_sale_records_what_an_order_cost_and_the_next_is_sized_from_it(tmp_path: Path):
    assert sizing.load("ecs", tmp_path).basis.startswith("the reference")
    summary = {
        "compute": "ecs",
        "accepted": 100,
        "emulator": {"seconds": 20.0},
        "cpu": {"by_role_cores": {"emulator: DynamoDB": 0.6, "ecs: tasks": 0.4}},
    }
    # GIVEN 1.0 core over 20 s for 100 orders: 0.2 CPU s per order
    assert sizing.record(summary, tmp_path / "20261202-ecs", tmp_path) == pytest.approx(0.2)
    got = sizing.load("ecs", tmp_path)
    assert got.cpu_s_per_order == pytest.approx(0.2) and "20261202-ecs" in got.basis
    assert json.loads((tmp_path / "calibration.json").read_text())["ecs"]["cpu_s_per_order"] == 0.2
    # AND the idle sandbox's share of the window is not charged to the orders
    idle = {**summary, "cpu": {**summary["cpu"], "idle_cores": 0.5}}
    assert sizing.record(idle, tmp_path / "20261202-ecs", tmp_path) == pytest.approx(0.1)
    assert sizing.load("ecs", tmp_path).idle_cores == 0.5
    # AND a sale too small to measure records nothing
    assert sizing.record({**summary, "accepted": 3}, tmp_path / "x", tmp_path) is None


def test_a_provisioned_mapping_is_sized_in_whole_pollers_with_their_invokes_reserved():
    base = cfg(lambdaPollerMode="provisioned", maxConcurrency="0")
    # a slow machine: the smallest mapping AWS allows (2 pollers = 20 invokes), at batch 1 to pay least
    caps, rate = sizing.worker_caps("lambda-sqs-provisioned", 1.0, base)
    assert caps == {"reservedConcurrency": "20", "lambdaMinPollers": "2", "lambdaMaxPollers": "2", "batchSize": "1"}
    assert rate == pytest.approx(20 / 3)
    # 50/s at 5 per 3 s per environment = 30 environments: 3 pollers, all 30 reserved; a config that deploys
    caps, rate = sizing.worker_caps("lambda-sqs-provisioned", 50.0, base)
    assert caps["lambdaMaxPollers"] == "3" and caps["reservedConcurrency"] == "30" and rate == pytest.approx(50)
    resolve({"compute": "lambda", "lambdaPollerMode": "provisioned", "maxConcurrency": "0", **caps})


def test_the_sandbox_deploys_provisioned_pollers_at_the_smallest_legal_mapping_unless_told_otherwise():
    from planner.config import load_config
    from sandbox.stack.topology import run_context

    context = run_context("lambda", {"lambdaPollerMode": "provisioned", "maxConcurrency": "0"})
    assert (context["reservedConcurrency"], context["lambdaMaxPollers"]) == ("20", "2")
    load_config({**json.loads((Path(__file__).parents[2] / "cdk.json").read_text())["context"], **context})
    mine = run_context(
        "lambda", {"lambdaPollerMode": "provisioned", "reservedConcurrency": "40", "lambdaMaxPollers": "4"}
    )
    assert (mine["reservedConcurrency"], mine["lambdaMaxPollers"], mine["maxConcurrency"]) == ("40", "4", "0")
    assert run_context("lambda")["maxConcurrency"] == "10"  # standard keeps the sandbox's defaults


def test_the_emulated_mapping_scales_its_pollers_as_the_planner_says(monkeypatch: pytest.MonkeyPatch):
    from sandbox.emulator import event_sources
    from sandbox.emulator.process import Scale

    def source(pollers):
        return event_sources.SqsEventSource(
            sqs=None, queue_url="", queue_arn="", pool=None, batch_size=5, visibility_s=30, wait_s=1,
            scale=Scale(1.0), max_concurrency=40, pollers=pollers,
        )  # fmt: skip

    now = [100.0]
    monkeypatch.setattr(event_sources.time, "monotonic", lambda: now[0])
    provisioned, standard = source((2, 4)), source(None)
    # before any message: the minimum pollers' 20 invokes, against standard's 5
    assert (provisioned.allowed(), standard.allowed()) == (20, 5)
    provisioned.first_message_at = standard.first_message_at = 100.0
    now[0] = 100.9  # +1,000 a minute = 15 more after 0.9 s; standard's +300 a minute = 4.5 more
    assert (provisioned.allowed(), standard.allowed()) == (35, 9)
    now[0] = 160.0  # capped by 4 pollers x 10, and by the 40 environments either way
    assert (provisioned.allowed(), standard.allowed()) == (40, 40)


def test_one_sale_for_every_variant_slows_the_processor_until_the_smallest_deployment_of_each_builds_a_backlog():
    from sandbox.runs.compare import RUNS
    from sandbox.stack.topology import run_context

    def config(variant: str, extra: dict[str, str] | None = None):
        compute, mode = RUNS[variant]
        return resolve(run_context(compute, mode, extra))

    variants = list(RUNS)
    cals = {v: sizing.Calibration(v, cpu_s_per_order=0.3, basis="test") for v in variants}
    cals["ecs"] = sizing.Calibration("ecs", cpu_s_per_order=0.4, basis="test")  # the costliest sets the rate
    sized = sizing.size_together(
        {v: config(v) for v in variants},
        cals,
        users=10,
        cores=2.0,
        with_latency=lambda v, ms: config(v, {"paymentLatencyMs": str(ms)}),
    )
    # GIVEN 2 free cores: 2 x 0.6 / 0.4 = 3 orders/s for all of them, the workers at half of it (1.5/s)
    assert [z.arrival_per_s for z in sized.values()] == pytest.approx([3.0] * len(variants))
    # THEN provisioned pollers' smallest mapping (20 environments, batches of 1: 20/3 s = 6.7/s at 3 s a
    # payment) is too fast for that: payments take ceil(3000 x 6.67 / (1.5 x 1.25)) = 10,700 ms, for everyone
    assert {z.context["paymentLatencyMs"] for z in sized.values()} == {"10700"}
    provisioned = sized["lambda-sqs-provisioned"]
    assert provisioned.context["lambdaMaxPollers"] == "2" and provisioned.context["batchSize"] == "1"
    assert provisioned.worker_capacity_per_s == pytest.approx(20 / 10.7)
    # AND every variant's workers pay less than the sale brings, none less than half of their share
    for variant, z in sized.items():
        assert 0.75 <= z.worker_capacity_per_s <= 1.5 * 1.25, (variant, z.context, z.worker_capacity_per_s)
    # Managed Instances: Lambda's 3 environments, the mapping's maxConcurrency capping the requests
    mi = sized["lambda-mi"].context
    assert mi["lmiMaxEnvironments"] == "3" and int(mi["maxConcurrency"]) <= 3 * 2
