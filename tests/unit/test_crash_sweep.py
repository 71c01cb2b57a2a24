"""Every step of a checkout, failed once: before it takes effect, or after (it happened, its answer was lost).

From the customer's side: an answer of 5xx means never charged, even after every worker and the
reconciler have run; a 2xx means the order ends terminal, charged at most once. One fault per case, on
the n-th call of one adapter method, in both checkout paths.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import pytest

from orders.domain.errors import PublishError, TransientPaymentError
from orders.domain.events import EventType
from orders.domain.models import OrderStatus
from tests.helpers import priced
from tests.unit.test_service import make_service

STEPS = [
    ("repository", "create", TimeoutError),
    ("repository", "transition", TimeoutError),
    ("repository", "get", TimeoutError),
    ("publisher", "publish", PublishError),
    ("processor", "charge", TransientPaymentError),
]
CASES = [
    (route, target, method, error, nth, after)
    for route, (target, method, error), nth, after in itertools.product(
        ("accept", "place_and_pay"), STEPS, (1, 2), (False, True)
    )
]


def inject(obj: Any, method: str, error: type[Exception], nth: int, after: bool) -> Any:
    """The n-th call of ``obj.method`` fails; ``after``: it took effect first. Returns the undo."""
    real = getattr(obj, method)
    calls = [0]

    def faulty(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] != nth:
            return real(*args, **kwargs)
        if after:
            real(*args, **kwargs)
            raise error(f"{method}: done, the answer was lost")
        raise error(f"{method}: failed before it took effect")

    setattr(obj, method, faulty)
    return lambda: setattr(obj, method, real)


def recover(svc: Any) -> None:
    """Everything that runs after the checkout, fault-free: workers on every event (redeliveries too),
    then the reconciler finding whatever is left non-terminal, a few rounds."""
    for _ in range(4):
        for event in list(svc.publisher.events):
            if event.event_type is EventType.ORDER_PLACED:
                with contextlib.suppress(TransientPaymentError):  # redelivered next round
                    svc.process_placed(event)
        svc.reconcile(updated_before="9999-12-31T00:00:00+00:00")


@pytest.mark.parametrize(("route", "target", "method", "error", "nth", "after"), CASES)
def test_a_5xx_is_never_charged_and_a_2xx_ends_terminal(valid_order, route, target, method, error, nth, after):
    svc, processor = make_service()
    obj = processor if target == "processor" else getattr(svc, target)
    undo = inject(obj, method, error, nth, after)
    request = priced(svc, valid_order)
    try:
        order = getattr(svc, route)(request)
        answered = (
            402 if order.status is OrderStatus.PAYMENT_FAILED else 201 if order.status is OrderStatus.PAID else 202
        )
    except Exception:
        order, answered = None, 500
    finally:
        undo()
    recover(svc)
    charges = processor.charges
    assert charges <= 1
    if answered >= 500:
        assert charges == 0, f"told {answered}, charged {charges}"
        assert all(o.status in (OrderStatus.REJECTED,) for o in svc.repository.all()), svc.repository.all()
    else:
        assert order is not None
        final = svc.get(order.order_id)
        assert final.status is OrderStatus.PAID and charges == 1, (answered, final.status, charges)
