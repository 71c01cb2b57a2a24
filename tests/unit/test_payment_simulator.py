import threading
import time

import pytest

from orders.adapters.payment import SimulatedPaymentProcessor
from orders.domain.errors import TransientPaymentError
from orders.domain.payment import PaymentRequest

REQ = PaymentRequest(order_id="o-1", amount=__import__("decimal").Decimal("1.00"), currency="USD", token="tok_visa")


def test_never_more_than_slots_payments_at_once():
    processor = SimulatedPaymentProcessor(slots=3, latency_ms=20)
    threads = [threading.Thread(target=processor.charge, args=(REQ,)) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert processor.charges == 12
    assert processor.peak_in_use == 3


def test_declined_token_is_a_permanent_decline():
    processor = SimulatedPaymentProcessor(slots=1, latency_ms=0)
    result = processor.charge(PaymentRequest("o-2", REQ.amount, "USD", "tok_declined"))
    assert not result.approved and result.decline_reason == "card_declined"


def test_failure_rate_one_always_raises_transient():
    processor = SimulatedPaymentProcessor(slots=1, latency_ms=0, failure_rate=1.0)
    with pytest.raises(TransientPaymentError):
        processor.charge(REQ)


def test_close_releases_waiters_but_lets_the_payment_in_progress_finish():
    processor = SimulatedPaymentProcessor(slots=1, latency_ms=300)
    outcomes: list[object] = []

    def pay():
        try:
            outcomes.append(processor.charge(REQ).approved)
        except TransientPaymentError:
            outcomes.append("released")

    first = threading.Thread(target=pay)
    first.start()
    time.sleep(0.05)
    waiters = [threading.Thread(target=pay) for _ in range(3)]
    for t in waiters:
        t.start()
    time.sleep(0.05)
    processor.close()
    for t in [first, *waiters]:
        t.join(2)
    assert sorted(map(str, outcomes)) == ["True", "released", "released", "released"]


def test_waiters_get_slots_in_arrival_order():
    # GIVEN one slot and callers arriving faster than it serves them, for longer than a waiter's poll
    processor = SimulatedPaymentProcessor(slots=1, latency_ms=30)
    served: list[str] = []
    lock = threading.Lock()

    def pay(order_id: str) -> None:
        processor.charge(PaymentRequest(order_id, REQ.amount, "USD", "tok_visa"))
        with lock:
            served.append(order_id)

    threads = []
    for n in range(20):
        t = threading.Thread(target=pay, args=(f"o-{n}",))
        t.start()
        threads.append(t)
        time.sleep(0.01)  # arrival order is the start order
    for t in threads:
        t.join(5)
    # THEN they are served first come, first served
    assert served == [f"o-{n}" for n in range(20)]
