"""The sandbox's figures from its records: pure functions, hand-computed answers."""

import json

import pytest

from sandbox import metrics


def rows(*points):
    return [{"t": t, "accepted": 100.0, "visible": v, "inflight": 0.0, "dlq": 0.0, "workers": w} for t, v, w in points]


def test_worker_efficiency_is_paid_over_what_running_workers_allow():
    # GIVEN 2 workers of 5/s each for 10 s, and 80 orders finished in that time
    samples = rows((0, 100, 2), (5, 60, 2), (10, 20, 2))
    eff = metrics.worker_efficiency(samples, start=0, end=10, worker_capacity=5)
    # THEN 80 / (2 x 5 x 10) = 0.8
    assert eff is not None and eff["ratio"] == pytest.approx(0.8)
    assert eff["paid_per_s"] == pytest.approx(8) and eff["allowed_per_s"] == pytest.approx(10)


def test_a_worker_twice_too_slow_halves_the_efficiency():
    fast = metrics.worker_efficiency(rows((0, 100, 2), (10, 0, 2)), start=0, end=10, worker_capacity=5)
    slow = metrics.worker_efficiency(rows((0, 100, 2), (10, 50, 2)), start=0, end=10, worker_capacity=5)
    assert fast and slow and slow["ratio"] == pytest.approx(fast["ratio"] / 2)


def test_dlq_bodies_of_any_shape_never_break_the_accounting():
    event = json.dumps({"event_type": "order_placed", "order_id": "o-1", "order": {}})
    on_failure = json.dumps({"requestPayload": {"Records": [{"Sns": {"Message": event}}]}})
    envelope = json.dumps({"Type": "Notification", "Message": event})
    assert metrics.dlq_order_id(event) == "o-1"
    assert metrics.dlq_order_id(on_failure) == "o-1"
    assert metrics.dlq_order_id(envelope) == "o-1"
    for poison in ("not json", "[]", "{}", '{"order_id": 7}', '{"requestPayload": 1}', "x" * 250_000):
        assert metrics.dlq_order_id(poison) is None


def test_forged_timestamps_are_left_out_not_allowed_to_bend_rates():
    stamps = ["2026-11-29T06:00:00.000+00:00", "2026-11-29T06:00:10.000+00:00", "0001-13-99", "", "nan"]
    assert metrics.rate_between(stamps) == pytest.approx(0.1)  # 2 good stamps, 1 interval of 10 s
    assert metrics.seconds("not a time") is None


def test_off_by_is_relative_and_undefined_without_a_model():
    assert metrics.off_by(115, 100) == pytest.approx(0.15)
    assert metrics.off_by(85, 100) == pytest.approx(0.15)
    assert metrics.off_by(5, 0) is None and metrics.off_by(None, 3) is None
