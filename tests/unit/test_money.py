"""The money invariants: each is 0 on a clean run and counts the defect it names."""

import pytest

from sandbox.results.money import INVARIANTS, money


def order(order_id, status="PAID", key=None):
    return {"order_id": order_id, "status": status, **({"checkout_key": key} if key else {})}


def answered(key, *statuses, twin=None):
    answers = [{"status": s} for s in statuses] + ([{"status": twin, "twin": True}] if twin else [])
    return {"key": key, "answers": answers}


CLEAN = (
    [order("o1", key="k1"), order("o2", "PAYMENT_FAILED", key="k2"), order("o3", "REJECTED", key="k3")],
    ["o1"],
    [answered("k1", 0, 409, 202), answered("k2", 402), answered("k3", 503, 503, 503, 503)],
)


def test_a_clean_run_has_every_invariant_at_zero_and_counts_the_clients():
    m = money(*CLEAN)
    assert all(m[k] == 0 for k in INVARIANTS), m
    assert m["clients"]["retries"] == 5 and m["clients"]["in_progress_409"] == 1 and m["clients"]["no_answer"] == 1


@pytest.mark.parametrize(
    ("invariant", "orders", "charged", "checkouts"),
    [
        # a retry created a second order under the same key, and both were charged
        ("checkouts_charged_twice", [order("o1", key="k"), order("o2", key="k")], ["o1", "o2"], []),
        # one order charged twice counts as its checkout charged twice too
        ("checkouts_charged_twice", [order("o1")], ["o1", "o1"], []),
        ("charged_not_paid", [order("o1", "PAYMENT_FAILED")], ["o1"], []),
        ("charged_not_paid", [order("o1", "PAYING")], ["o1"], []),
        ("paid_not_charged", [order("o1")], [], []),
        ("charged_after_5xx", [order("o1", key="k")], ["o1"], [answered("k", 202, 502)]),
        ("not_terminal", [order("o1", "PLACED")], [], []),
    ],
)
def test_each_invariant_counts_its_defect(invariant, orders, charged, checkouts):
    assert money(orders, charged, checkouts)[invariant] == 1


def test_a_5xx_then_a_successful_retry_is_not_charged_after_5xx():
    m = money([order("o1", key="k")], ["o1"], [answered("k", 503, 202)])
    assert m["charged_after_5xx"] == 0
