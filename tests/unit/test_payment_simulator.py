import random
import threading
import time
from decimal import Decimal

import pytest

from orders.adapters.ledger import SqliteLedger, summarize
from orders.adapters.payment import SimulatedPaymentProcessor
from orders.domain.errors import TransientPaymentError
from orders.domain.payment import PaymentRequest

REQ = PaymentRequest(
    order_id="o-1",
    amount=Decimal("1.00"),
    currency="USD",
    token="tok_visa",
    idempotency_key="k-1",
)


def req(order_id: str, token: str = "tok_visa") -> PaymentRequest:
    return PaymentRequest(order_id, REQ.amount, "USD", token, idempotency_key=f"key-{order_id}")


def test_never_more_than_slots_payments_at_once():
    processor = SimulatedPaymentProcessor(slots=3, latency_ms=20)
    threads = [threading.Thread(target=processor.charge, args=(req(f"o-{n}"),)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert processor.charges == 12
    assert processor.peak_in_use == 3


def test_declined_token_is_a_permanent_decline():
    processor = SimulatedPaymentProcessor(slots=1, latency_ms=0)
    result = processor.charge(req("o-2", "tok_declined"))
    assert not result.approved and result.decline_reason == "card_declined"


def test_failure_rate_one_always_raises_transient():
    processor = SimulatedPaymentProcessor(slots=1, latency_ms=0, failure_rate=1.0)
    with pytest.raises(TransientPaymentError):
        processor.charge(REQ)


def test_close_releases_waiters_but_lets_the_payment_in_progress_finish():
    processor = SimulatedPaymentProcessor(slots=1, latency_ms=300)
    outcomes: list[object] = []

    def pay(order_id):
        try:
            outcomes.append(processor.charge(req(order_id)).approved)
        except TransientPaymentError:
            outcomes.append("released")

    first = threading.Thread(target=pay, args=("first",))
    first.start()
    time.sleep(0.05)
    waiters = [threading.Thread(target=pay, args=(f"w-{n}",)) for n in range(3)]
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
        processor.charge(req(order_id))
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


def test_a_repeated_key_is_answered_from_the_ledger_not_charged_again():
    # GIVEN a charge that went through
    processor = SimulatedPaymentProcessor(slots=2, latency_ms=0)
    first = processor.charge(REQ)
    # WHEN the same key is sent again (a retry after a crash)
    again = processor.charge(REQ)
    # THEN the first result comes back, and the ledger holds one charge and one replay
    assert again == first and again.approved
    assert summarize(processor.ledger.entries()).to_dict() == {
        "charges": 1,
        "declines": 0,
        "replays": 1,
        "double_charges": 0,
    }
    assert processor.find(REQ.idempotency_key) == first
    assert processor.find("never-sent") is None


def test_a_key_still_being_answered_is_a_conflict_not_a_second_charge():
    # GIVEN a first request whose answer is still on its way
    processor = SimulatedPaymentProcessor(slots=2, latency_ms=300)
    t = threading.Thread(target=processor.charge, args=(REQ,))
    t.start()
    time.sleep(0.05)
    # WHEN a second request with the same key arrives, or the key is looked up
    # THEN both are told to retry later, and only one charge exists
    with pytest.raises(TransientPaymentError, match="in progress"):
        processor.charge(REQ)
    with pytest.raises(TransientPaymentError, match="in progress"):
        processor.find(REQ.idempotency_key)
    t.join()
    assert summarize(processor.ledger.entries()).charges == 1


def test_ledger_counts_a_second_key_for_the_same_order_as_a_double_charge():
    # The count must be able to fail: two keys for one order is exactly the defect it exists to catch.
    processor = SimulatedPaymentProcessor(slots=1, latency_ms=0)
    processor.charge(REQ)
    processor.charge(PaymentRequest(REQ.order_id, REQ.amount, "USD", "tok_visa", idempotency_key="another-key"))
    assert summarize(processor.ledger.entries()).double_charges == 1


@pytest.mark.parametrize("shared", [False, True])
def test_sqlite_ledger_is_shared_by_every_client_of_the_file(tmp_path, shared):
    # GIVEN two processor clients (two worker processes) on one ledger file, or each on its own
    a = SimulatedPaymentProcessor(slots=1, latency_ms=0, ledger=SqliteLedger(tmp_path / "a.db"))
    b = SimulatedPaymentProcessor(slots=1, latency_ms=0, ledger=SqliteLedger(tmp_path / ("a.db" if shared else "b.db")))
    # WHEN both send the same key
    first, second = a.charge(REQ), b.charge(REQ)
    # THEN a shared ledger charges once; separate ones charge twice (what a processor without keys would do)
    entries = SqliteLedger(tmp_path / "a.db").entries()
    if shared:
        assert first == second and summarize(entries).charges == 1
    else:
        assert first.payment_id != second.payment_id and summarize(entries).charges == 1


def test_an_outage_fails_every_charge_before_it_commits_then_ends(tmp_path):
    outage = tmp_path / "payment-outage"
    processor = SimulatedPaymentProcessor(slots=1, latency_ms=0, outage_file=str(outage), lost_response_share=1.0)
    request = PaymentRequest(order_id="o1", amount=Decimal("1"), currency="USD", token="tok_visa", idempotency_key="k1")
    outage.write_text(str(time.time() + 60))
    with pytest.raises(TransientPaymentError):
        processor.charge(request)
    assert processor.ledger.entries() == []  # down: nothing was charged, whatever the lost-answer share
    outage.write_text(str(time.time() - 1))
    assert processor.charge(request).approved and processor.charges == 1


def test_a_slow_answer_takes_five_times_the_latency_and_a_lookup_meanwhile_finds_it_in_progress():
    slept: list[float] = []
    now = [1000.0]
    processor = SimulatedPaymentProcessor(
        slots=1,
        latency_ms=2000,
        slow_share=1.0,
        sleep=slept.append,
        rng=random.Random(1),
        clock=lambda: now[0],
    )
    request = PaymentRequest(
        order_id="o",
        amount=Decimal("1.00"),
        currency="USD",
        token="tok_visa",
        idempotency_key="k",
    )
    processor.charge(request)
    assert slept == [10.0]
    now[0] += 5  # still being answered (ready after 10 s)
    with pytest.raises(TransientPaymentError):
        processor.find("k")


def test_lookup_by_key_forgets_after_the_processors_window():
    now = [1000.0]
    processor = SimulatedPaymentProcessor(
        slots=1, latency_ms=0, sleep=lambda s: None, clock=lambda: now[0], key_window_s=3600
    )
    processor.charge(
        PaymentRequest(order_id="o", amount=Decimal("1.00"), currency="USD", token="tok_visa", idempotency_key="k")
    )
    assert processor.find("k") is not None
    now[0] += 3601
    assert processor.find("k") is None  # as a real processor: the key is gone; only the order's own record knows
