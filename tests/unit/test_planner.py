"""The planner's model against answers computed by hand (no AWS, no sandbox)."""

import math

import pytest

from planner import aws
from planner.__main__ import main
from planner.cost import Assumptions, Prices, break_even, monthly_cost
from planner.model import Timing, Workload, arrivals_from_profile, simulate
from planner.plan import Target, size

NO_LAG = Timing.aws(metric_lag_s=0.0, task_start_s=0.0, cold_start_s=0.0)


def test_constant_arrival_into_a_fixed_pool_drains_at_the_slots_limit():
    # GIVEN 2 always-on tasks of 5 slots at 1 s per payment (10 orders/s) and 20 orders/s for 10 s
    w = Workload(variant="ecs", min_tasks=2, max_tasks=2, worker_concurrency=5, payment_slots=5, payment_latency_s=1.0)
    r = simulate(w, arrivals_from_profile([(20, 10)]), NO_LAG)
    # THEN by hand: 200 arrive, ~100 are paid during the sale, the other ~100 drain at 10/s in ~10 s
    assert r.backlog_at_load_end == pytest.approx(100, abs=12)
    assert r.drain_seconds == pytest.approx(10, abs=1.2)
    assert r.peak_workers == 2 and len(r.waits) == 200


def test_a_worker_twice_too_slow_doubles_the_predicted_drain():
    fast = Workload(variant="ecs", min_tasks=2, max_tasks=2, worker_concurrency=5, payment_latency_s=1.0)
    slow = Workload(variant="ecs", min_tasks=2, max_tasks=2, worker_concurrency=5, payment_latency_s=2.0)
    arrivals = arrivals_from_profile([(30, 10)])
    d_fast = simulate(fast, arrivals, NO_LAG).drain_seconds
    d_slow = simulate(slow, arrivals, NO_LAG).drain_seconds
    assert d_fast and d_slow and d_slow == pytest.approx(2 * d_fast + 10, rel=0.1)  # (300-50)/5 vs (300-100)/10


def test_step_arrival_into_target_tracking_scales_out_after_three_datapoints():
    # GIVEN one always-on task (5/3 orders/s), target 10 per task, and 5 orders/s from t=0
    w = Workload(
        variant="ecs",
        min_tasks=1,
        max_tasks=10,
        worker_concurrency=5,
        payment_latency_s=3.0,
        backlog_per_task_target=10,
        scale_out_cooldown_s=0,
    )
    r = simulate(w, arrivals_from_profile([(5, 600)]), NO_LAG)
    # THEN the high alarm needs 3 one-minute datapoints above the target: evaluations at 60, 120, 180 s
    first = r.scaling[0]
    assert first[0] == pytest.approx(180, abs=0.5)
    # AND it sets ceil(backlog / target) (backlog ~ (5 - 5/3) x 180 = 600 -> 60 tasks), capped at maxTasks
    assert first[2] == 10


def test_wake_from_zero_sets_the_implied_count_at_the_first_period_that_sees_the_backlog():
    w = Workload(variant="ecs", min_tasks=0, max_tasks=8, worker_concurrency=5, backlog_per_task_target=50)
    r = simulate(w, arrivals_from_profile([(5, 30)]), Timing.aws(metric_lag_s=60))
    # the first period (0, 60] is read at 120 s with a 60 s lag; 150 visible -> ceil(150 / 50) = 3 tasks
    assert r.first_scale_out_s == pytest.approx(120, abs=0.5)
    assert r.scaling[0][2] == 3


def test_target_tracking_scales_in_only_after_fifteen_low_datapoints():
    tt = aws.TargetTracking(target=10, min_tasks=0, max_tasks=10, scale_out_cooldown_s=0, scale_in_cooldown_s=0)
    decisions = [tt.evaluate(60.0 * n, backlog=0, running=4) for n in range(1, 16)]
    assert decisions[:14] == [None] * 14 and decisions[14] == 0


def test_lambda_sqs_scaling_starts_at_five_and_adds_300_a_minute():
    assert aws.lambda_sqs_concurrency(0, 1000) == 5
    assert aws.lambda_sqs_concurrency(60, 1000) == 305
    assert aws.lambda_sqs_concurrency(600, 1000) == 1000
    assert aws.lambda_sqs_concurrency(600, 50) == 50


def test_per_worker_capacity_follows_slots_batch_and_how_a_batch_is_paid():
    assert aws.ecs_task_capacity_per_s(worker_concurrency=100, payment_slots=5, payment_latency_s=3) == 5 / 3
    assert aws.lambda_env_capacity_per_s(batch_size=10, payment_slots=5, payment_latency_s=3) == 10 / 6
    assert aws.lambda_env_capacity_per_s(batch_size=10, payment_slots=5, payment_latency_s=3, concurrent=False) == 1 / 3
    assert Workload(variant="lambda-sns").worker_capacity_per_s == pytest.approx(1 / 3)


def test_a_burst_into_an_idle_mapping_is_received_a_message_at_a_time_as_it_arrives():
    """GIVEN an idle SQS mapping of 2 environments, batches of 3, 3 s payments, and a burst of 10 orders 20 ms
    apart (a long poll returns at the first message; no batching window) THEN the first two invokes carry one
    record each, so for the next 3 s 2 orders are in flight and the other 8 wait; a 0.15 s step lumping the
    burst would have sent full batches of 3 (6 in flight) and predicted a smaller backlog."""
    w = Workload(variant="lambda-sqs", reserved_concurrency=2, max_concurrency=2, batch_size=3, payment_slots=5)
    r = simulate(w, [i * 0.02 for i in range(10)], Timing.sandbox(1.0))
    at = r.times.index(next(t for t in r.times if t >= 1.5))
    assert (r.inflight[at], r.visible[at]) == (2, 8)
    assert r.invocations == 2 + 3  # 1 + 1, then 3 + 3, then 2


def test_lambda_sns_is_capped_at_reserved_concurrency_over_latency():
    w = Workload(variant="lambda-sns", reserved_concurrency=10, payment_latency_s=1.0)
    r = simulate(w, arrivals_from_profile([(20, 10)]), NO_LAG)
    assert r.peak_workers == 10
    assert r.drain_seconds == pytest.approx(10, abs=1.2)  # 200 orders at 10/s: 100 left at the end


@pytest.fixture(scope="module")
def prices():
    return Prices.load()


def test_seed_lambda_row_500k_orders_is_5_83_not_8_33(prices):
    # 500,000 orders x 3 s x 0.5 GB = 750,000 GB-s - 400,000 free = 350,000 GB-s x $0.0000166667 (x86)
    w = Workload(variant="lambda-sns", lambda_memory_mb=512, payment_latency_s=3.0)
    a = Assumptions(architecture="x86", cold_start_share=0, flash_share=0, api_ms=0, invocation_overhead_ms=0)
    cost = monthly_cost(w, 500_000, prices, a)
    assert cost["lambda_gb_seconds"] == pytest.approx(750_000)
    assert cost["by_service_usd"]["lambda_compute"] == pytest.approx(5.83, abs=0.01)


def test_seed_fargate_task_is_9_01_a_month_not_10_20(prices):
    # 0.25 vCPU x $0.04048 + 0.5 GB x $0.004445 = $0.0123425 per hour x 730 h
    w = Workload(variant="ecs", min_tasks=1, task_cpu=256, task_memory_mb=512)
    a = Assumptions(spot=False, flash_share=0, public_ipv4_per_task=False)
    cost = monthly_cost(w, 1, prices, a)  # one order: the always-on task is the cost
    assert cost["by_service_usd"]["fargate"] == pytest.approx(9.01, abs=0.01)


def test_switches_move_the_figures_the_way_they_should(prices):
    w = Workload(variant="lambda-sqs")
    base = monthly_cost(w, 5_000_000, prices, Assumptions())["total_usd"]
    assert monthly_cost(w, 5_000_000, prices, Assumptions(architecture="x86"))["total_usd"] > base
    assert monthly_cost(w, 5_000_000, prices, Assumptions(free_tier=False))["total_usd"] > base
    assert monthly_cost(w, 5_000_000, prices, Assumptions(cold_start_share=0.5))["total_usd"] > base
    e = Workload(variant="ecs")
    assert (
        monthly_cost(e, 5_000_000, prices, Assumptions(spot=False))["total_usd"]
        > monthly_cost(e, 5_000_000, prices, Assumptions())["total_usd"]
    )
    with pytest.raises(ValueError, match="x86 tasks only"):
        Assumptions(spot=True, ecs_architecture="arm")


def test_break_even_is_computed_where_the_costs_cross():
    n = break_even(lambda x: 2e-5 * x, lambda x: 10 + 1e-5 * x)
    assert n == pytest.approx(1_000_000, rel=1e-6)
    assert break_even(lambda x: 1.0, lambda x: 2.0) is None


def test_planner_returns_the_smallest_size_that_meets_the_slo():
    target = Target(rate_per_s=60, duration_s=60, drain_slo_s=300)
    sizing = size("ecs", Workload(variant="ecs"), target)
    assert sizing.workload is not None and sizing.result is not None
    assert sizing.result.drain_seconds is not None and sizing.result.drain_seconds <= 300
    smaller = simulate(
        Workload(variant="ecs", max_tasks=sizing.workload.max_tasks - 1, worker_concurrency=10), target.arrivals
    )
    assert smaller.drain_seconds is None or smaller.drain_seconds > 300


def test_ten_thousand_orders_a_second_gets_an_answer_not_a_crash(capsys):
    assert main(["plan", "--rate", "10000", "--duration", "1", "--drain-slo", "120"]) == 0
    out = capsys.readouterr().out
    assert "OVER" in out and "HTTP API stage throttle" in out


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["plan", "--rate", "-5", "--duration", "60", "--drain-slo", "300"], "--rate"),
        (["plan", "--rate", "x", "--duration", "60", "--drain-slo", "300"], "--rate"),
        (["cost", "--orders", "nan"], "--orders"),
        (["cost", "--orders", "1000", "-c", "maxTasks=0"], "maxTasks"),
        (["cost", "--orders", "1000", "-c", "noequals"], "-c"),
        (["cost", "--orders", "1000", "--cold-start-share", "2"], "cold-start-share"),
    ],
)
def test_bad_arguments_are_one_line_naming_the_argument_and_exit_2(capsys, argv, names):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and names in err


def test_context_overrides_change_the_prediction_before_a_deploy(capsys):
    main(["plan", "--rate", "60", "--duration", "60", "--drain-slo", "300"])
    default = capsys.readouterr().out
    main(["plan", "--rate", "60", "--duration", "60", "--drain-slo", "300", "-c", "maxTasks=5"])
    fewer = capsys.readouterr().out
    assert "5 x 1.67/s = 8.3/s" in fewer and "25 x 1.67/s = 41.7/s" in default
    assert math.isfinite(len(fewer))


def test_a_hot_sku_needs_a_shard_per_500_orders_a_second():
    # Hand-computed: each order reserves the hot SKU in a transaction (2 write units); an item takes 1,000/s.
    from planner.plan import hot_sku_limit, shards_needed

    assert [shards_needed(r) for r in (60, 500, 501, 3000)] == [1, 1, 2, 6]
    one = hot_sku_limit(600, stock_shards=1)
    assert (one.demand, one.limit) == (1200, 1000) and one.headroom < 1  # one shard is the bottleneck
    assert hot_sku_limit(600, stock_shards=shards_needed(600)).headroom >= 1
    assert "stockShards=2" in one.adjustable


def test_provisioned_pollers_start_at_ten_invokes_each_and_add_a_thousand_a_minute():
    # By hand: 2 pollers x 10 = 20 at once; +1,000/min = 16.7/s; the ceiling is max pollers x 10, at most 20,000
    assert aws.lambda_sqs_provisioned_concurrency(0, 2, 5) == 20
    assert aws.lambda_sqs_provisioned_concurrency(1.2, 2, 5) == 40
    assert aws.lambda_sqs_provisioned_concurrency(10, 2, 5) == 50
    assert aws.lambda_sqs_provisioned_concurrency(60, 2, 200) == 1020
    assert aws.lambda_sqs_provisioned_concurrency(3600, 200, 2000) == 20_000


@pytest.mark.parametrize(
    ("variant", "by_hand_s"),
    [
        ("lambda-sqs", (1000 - 5) / 300 * 60),  # 5, then +300 a minute: 199 s to 1,000
        ("lambda-sqs-provisioned", (1000 - 20) / 1000 * 60),  # 20, then +1,000 a minute: 58.8 s
    ],
)
def test_time_to_full_capacity_for_a_thousand_environments(variant, by_hand_s):
    # GIVEN 1,000 environments allowed (reserved; 100 pollers or maxConcurrency 1000) and a sale far above them
    w = Workload(
        variant=variant,
        reserved_concurrency=1000,
        max_concurrency=1000,
        min_pollers=2,
        max_pollers=100,
        batch_size=5,
        payment_slots=5,
        payment_latency_s=3.0,
    )
    r = simulate(w, arrivals_from_profile([(2000, 300)]), NO_LAG)
    # THEN the mapping allows all 1,000 when the rule says, within a simulation step
    assert r.full_capacity_s == pytest.approx(by_hand_s, abs=0.5)
    assert r.peak_workers == 1000


def test_provisioned_pollers_bill_the_minimum_all_month_and_one_poller_per_ten_busy_invokes():
    prices = Prices.load()
    epu = prices["lambda_sqs_epu_hour"]
    w = Workload(variant="lambda-sqs-provisioned", min_pollers=3, max_pollers=5, reserved_concurrency=50)
    # No sales: only the 3 minimum pollers, 730 hours
    quiet = monthly_cost(w, 1000, prices, Assumptions(flash_share=0.0))
    assert quiet["by_service_usd"]["lambda_pollers"] == pytest.approx(3 * 730 * epu)
    # A million orders, half in sales in full batches of 5 paid in one 3 s wave: 100,000 batches x 3 s
    # = 83.3 busy environment-hours, 8.33 poller-hours on top of the minimum
    busy = monthly_cost(w, 1_000_000, prices, Assumptions(flash_share=0.5))
    assert busy["by_service_usd"]["lambda_pollers"] == pytest.approx((3 * 730 + 100_000 * 3 / 3600 / 10) * epu)
    standard = Workload(variant="lambda-sqs", reserved_concurrency=50, max_concurrency=50)
    assert monthly_cost(standard, 1000, prices)["by_service_usd"]["lambda_pollers"] == 0


def test_the_smallest_provisioned_mapping_is_counted_in_pollers_with_their_invokes_reserved():
    target = Target(rate_per_s=60, duration_s=60, drain_slo_s=300)
    sizing = size("lambda-sqs-provisioned", Workload(variant="lambda-sqs-provisioned"), target, NO_LAG)
    assert sizing.knob == "lambdaMaxPollers" and sizing.workload is not None
    # 3,600 orders in 360 s need 10/s = 6 environments of 1.67/s: the 2-poller minimum (20) is already enough
    assert sizing.ceiling == 2 and sizing.workload.reserved_concurrency == 20
    assert sizing.workload.max_concurrency == 0


def test_the_model_predicts_the_published_sqs_ramp_within_a_quarter_and_explains_every_miss():
    from planner.measured import measurements

    found = measurements()
    assert len({m.source for m in found}) >= 3
    # the 2018 experiment by hand: 5 + t/60 x 60 concurrent at 0.5 s per message, 100,000 messages:
    # (5 T + T^2 / 2) / 0.5 = 100,000  =>  T = 311.3 s; measured 5.5 min
    [ramp] = [m for m in found if "2018" in m.experiment]
    assert ramp.predicted == pytest.approx(311.3, abs=1.0) and ramp.holds
    assert all(m.holds or m.why_off for m in found)


def test_the_verdict_names_each_criterions_winner_and_where_the_cheapest_changes():
    from planner.verdict import verdict

    figures = {
        "ecs": {"drain_seconds": 200.0, "wait_p99_seconds": 210.0, "full_capacity_seconds": 180.0},
        "lambda-sqs": {"drain_seconds": 3.0, "wait_p99_seconds": 6.0, "full_capacity_seconds": 9.0},
        "lambda-sqs-provisioned": {"drain_seconds": 3.1, "wait_p99_seconds": 4.0, "full_capacity_seconds": 2.0},
    }
    costs = {
        "ecs": {10_000: 14.0, 1_000_000: 14.75},
        "lambda-sqs": {10_000: 0.5, 1_000_000: 15.0},
        "lambda-sqs-provisioned": {10_000: 14.0, 1_000_000: 28.5},
    }
    lines = verdict(figures, costs)
    assert lines[0].startswith("lambda-sqs and lambda-sqs-provisioned tie for the shortest drain")
    assert lines[1].startswith("choose lambda-sqs-provisioned for the shortest order wait")
    assert lines[2].startswith("choose lambda-sqs-provisioned for the fastest to full worker capacity: 2 s")
    assert "choose lambda-sqs for the lowest cost at 10,000 orders a month (at 10,000: $13.50" in lines[3]
    assert "choose ecs for the lowest cost at 1,000,000 orders a month (at 1,000,000: $0.25" in lines[4]


def test_managed_instances_start_at_three_environments_and_at_most_double_every_five_minutes():
    assert aws.lambda_mi_environments(0, 3, 10) == 3
    assert aws.lambda_mi_environments(150, 3, 10) == 4  # 3 x 2^0.5 = 4.24
    assert aws.lambda_mi_environments(300, 3, 10) == 6
    assert aws.lambda_mi_environments(600, 3, 10) == 10  # 12, capped
    # GIVEN 10 environments of 5 requests (50 workers) and a sale far above them
    w = Workload(variant="lambda-mi", mi_max_envs=10, mi_concurrency=5, max_concurrency=50, batch_size=5)
    r = simulate(w, arrivals_from_profile([(200, 900)]), NO_LAG)
    # THEN by hand: 3 x 2^(t / 300) = 10 at t = 300 log2(10 / 3) = 521 s; the mapping's own ramp (50 in 9 s)
    # is not what binds; no request starts cold (the processes start with their environment)
    assert r.full_capacity_s == pytest.approx(300 * math.log2(10 / 3), abs=0.5)
    assert r.peak_workers == 50 and r.cold_starts == 0


def test_managed_instances_bill_the_instances_of_three_environments_all_month_plus_the_fee():
    prices = Prices.load()
    w = Workload(variant="lambda-mi", mi_min_envs=3, mi_concurrency=5, mi_vcpus_per_env=1.0)
    quiet = monthly_cost(w, 1000, prices, Assumptions(flash_share=0.0))
    vcpu_hour, fee = prices["lambda_mi_vcpu_hour_arm"], prices["lambda_mi_management_fee"]
    assert quiet["by_service_usd"]["lambda_instances"] == pytest.approx(3 * 730 * vcpu_hour * 1.15)
    assert fee == 0.15 and quiet["by_service_usd"]["lambda_compute"] == 0  # no duration charge


def test_managed_instances_pay_for_their_vpcs_interface_endpoints_all_month_and_the_others_do_not():
    """GIVEN the lambda-mi stack's two interface endpoints (SNS, Logs) in two AZs at $0.01 an endpoint-AZ-hour
    THEN by hand 2 x 2 x 730 x 0.01 = $29.20 a month, whatever the volume; no other variant has the line."""
    prices = Prices.load()
    assert prices["vpc_interface_endpoint_hour"] == 0.01
    for orders in (0, 1_000_000):
        mi = monthly_cost(Workload(variant="lambda-mi"), orders, prices)
        assert mi["by_service_usd"]["vpc_endpoints"] == pytest.approx(29.20)
    for variant in ("ecs", "lambda-sqs", "lambda-sqs-provisioned", "lambda-sns"):
        assert monthly_cost(Workload(variant=variant), 1_000_000, prices)["by_service_usd"]["vpc_endpoints"] == 0


def test_the_sandbox_request_overheads_lengthen_each_invoke_by_its_records_and_its_receive():
    """GIVEN one environment (batches of 2, 1 s payments) and 4 orders at once (the first reaches the idle
    poller alone: invokes of 1, 2 and 1 records) WHEN each record costs 0.05 s of requests and each invoke
    0.1 s more THEN the drain is 3 x 0.1 + 4 x 0.05 = 0.5 s longer than without them."""
    w = Workload(variant="lambda-sqs", reserved_concurrency=1, max_concurrency=1, batch_size=2, payment_latency_s=1.0)
    bare = simulate(w, [0.0] * 4, Timing.sandbox(1.0), step_s=0.01)
    loaded = simulate(w, [0.0] * 4, Timing.sandbox(1.0, record_overhead_s=0.05, invoke_overhead_s=0.1), step_s=0.01)
    assert loaded.invocations == bare.invocations == 3
    assert loaded.drain_seconds - bare.drain_seconds == pytest.approx(0.5, abs=0.03)


def test_an_ecs_consumer_slot_pays_each_record_its_requests():
    """GIVEN one task of one consumer (1 s payments) and 3 orders WHEN each record costs 0.1 s of requests
    THEN they are paid one after another in 1.1 s each: 0.3 s more than without."""
    w = Workload(variant="ecs", min_tasks=1, max_tasks=1, worker_concurrency=1, payment_latency_s=1.0)
    bare = simulate(w, [0.0] * 3, Timing.sandbox(1.0), step_s=0.01)
    loaded = simulate(w, [0.0] * 3, Timing.sandbox(1.0, record_overhead_s=0.1), step_s=0.01)
    assert loaded.drain_seconds - bare.drain_seconds == pytest.approx(0.3, abs=0.03)


def test_a_workers_slot_limit_with_request_time_is_what_the_simulation_pays():
    """GIVEN one Lambda environment (batches of 2, 1 s payments paid at once) WHEN each record costs 0.05 s
    of requests and each invoke 0.1 s THEN a full batch takes 1 + 0.1 + 2 x 0.05 = 1.2 s: 2 / 1.2 paid/s,
    as the simulation drains them; an ECS consumer of 1 s payments and 0.1 s requests pays 1 / 1.1."""
    w = Workload(variant="lambda-sqs", reserved_concurrency=1, max_concurrency=1, batch_size=2, payment_latency_s=1.0)
    timing = Timing.sandbox(1.0, record_overhead_s=0.05, invoke_overhead_s=0.1)
    assert w.worker_capacity_with_requests_per_s(timing) == pytest.approx(2 / 1.2)
    assert w.worker_capacity_with_requests_per_s(Timing.aws()) == pytest.approx(w.worker_capacity_per_s)
    run = simulate(w, [0.0] * 21, timing, step_s=0.01)  # the first reaches the idle poller alone, then 10 full
    assert run.invocations == 11
    # a 0.5 s cold start, the lone record's 1.15 s, then ten full batches at the limit's 1.2 s each
    assert run.drain_seconds == pytest.approx(0.5 + 1.15 + 10 * 1.2, abs=0.15)
    ecs = Workload(variant="ecs", min_tasks=1, max_tasks=1, worker_concurrency=1, payment_latency_s=1.0)
    assert ecs.worker_capacity_with_requests_per_s(Timing.sandbox(1.0, record_overhead_s=0.1)) == pytest.approx(1 / 1.1)
