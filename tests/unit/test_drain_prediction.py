"""The sandbox's drain prediction: measured capacity spent over the workers that actually ran."""

import pytest

from sandbox.report import predict_drain


def timeline(*steps: tuple[float, float], until: float, every: float = 0.5) -> list[dict[str, float]]:
    """Samples every ``every`` s; ``steps`` are (from t, workers)."""
    rows, t = [], 0.0
    while t <= until:
        rows.append({"t": t, "workers": [w for start, w in steps if start <= t][-1]})
        t = round(t + every, 6)
    return rows


def test_steady_workers_drain_at_the_measured_capacity():
    rows = timeline((0, 4), until=60)
    # 4 workers could pay 4 x 8 = 32/s, but the machine was measured at 20/s: 100 orders take 5 s.
    assert predict_drain(rows, start=10, backlog=100, capacity=20, worker_limit=8) == pytest.approx(5.0)


def test_a_scale_up_still_under_way_is_part_of_the_prediction():
    # GIVEN one task until t=14, then four; each task pays at most 8/s, the machine 20/s
    rows = timeline((0, 1), (14, 4), until=60)
    # WHEN the load stops at t=10 with 68 + 32 orders waiting
    predicted = predict_drain(rows, start=10, backlog=100, capacity=20, worker_limit=8)
    # THEN 4 s at 8/s (32 orders), then 68 at 20/s (3.4 s)
    assert predicted == pytest.approx(7.4)


def test_time_with_no_worker_running_counts():
    rows = timeline((0, 0), (12, 2), until=60)
    assert predict_drain(rows, start=10, backlog=40, capacity=20, worker_limit=10) == pytest.approx(4.0)


def test_past_the_samples_the_last_rate_carries_on():
    rows = timeline((0, 2), until=11)
    assert predict_drain(rows, start=10, backlog=100, capacity=20, worker_limit=10) == pytest.approx(5.0)


def test_nothing_to_drain_or_nothing_measured():
    rows = timeline((0, 2), until=20)
    assert predict_drain(rows, start=10, backlog=0, capacity=20, worker_limit=10) == 0.0
    assert predict_drain(rows, start=10, backlog=50, capacity=0, worker_limit=10) is None
