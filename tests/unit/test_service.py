"""Domain behaviour with in-memory adapters behind the same ports (no network)."""

import threading
from datetime import UTC, datetime

import pytest

from orders.adapters.ledger import summarize
from orders.adapters.memory import InMemoryOrderRepository, InMemoryPublisher, in_memory_persistence
from orders.adapters.payment import FixedBudget, IdempotentPayments, SimulatedPaymentProcessor
from orders.domain.errors import MalformedEventError, OrderNotFoundError, PublishError, TransientPaymentError
from orders.domain.events import EventType, OrderEvent
from orders.domain.models import OrderStatus
from orders.domain.payment import PaymentRequest
from orders.domain.service import OrderService, Outcome, Overloaded
from orders.entrypoints.records import process_message
from tests.helpers import priced, sample_catalog


class FixedDepth:
    def __init__(self, value: int) -> None:
        self.value = value
        self.reads = 0

    def depth(self) -> int:
        self.reads += 1
        return self.value


def make_service(*, failure_rate=0.0, publisher=None, depth=None, limit=0, clock=__import__("time").time):
    processor = SimulatedPaymentProcessor(slots=5, latency_ms=0, failure_rate=failure_rate, clock=clock)
    payments = IdempotentPayments(processor, in_memory_persistence(), ttl_s=3600)
    payments.register_lambda_context(FixedBudget(60_000))
    catalog = sample_catalog()
    svc = OrderService(
        repository=InMemoryOrderRepository(catalog),
        publisher=publisher or InMemoryPublisher(),
        payments=payments,
        depth_probe=depth,
        max_queue_depth=limit,
        catalog=catalog,
    )
    return svc, processor


def placed_event(svc, valid_order, **overrides):
    order = svc.accept(priced(svc, {**valid_order, **overrides}))
    return order, svc.publisher.events[-1]


def test_accept_records_placed_and_publishes_order_placed(valid_order):
    svc, _ = make_service()
    order, event = placed_event(svc, valid_order)
    assert svc.get(order.order_id).status is OrderStatus.PLACED
    assert event.event_type is EventType.ORDER_PLACED
    assert event.order_id == order.order_id


def test_failed_publish_tombstones_the_order_and_no_worker_charges_it(valid_order):
    # GIVEN a publisher that sends the event and then reports an error (the ambiguous failure)
    class SentThenFailed(InMemoryPublisher):
        def publish(self, event):
            super().publish(event)
            raise PublishError("timed out after sending")

    svc, processor = make_service(publisher=SentThenFailed())
    # WHEN an order is accepted THEN the client gets the error (5xx) ...
    with pytest.raises(PublishError):
        svc.accept(priced(svc, valid_order))
    [order] = svc.repository.all()
    assert order.status is OrderStatus.REJECTED
    # ... AND the event that did get out is never charged, however often it is delivered
    event = svc.publisher.events[0]
    assert [svc.process_placed(event) for _ in range(2)] == [Outcome.REJECTED, Outcome.REJECTED]
    assert processor.charges == 0
    assert svc.get(order.order_id).status is OrderStatus.REJECTED


def test_ambiguous_publish_whose_event_a_worker_already_took_is_accepted(valid_order):
    # GIVEN a publisher whose event is delivered and taken by a worker before the error comes back
    holder: dict[str, OrderService] = {}

    class DeliveredThenFailed(InMemoryPublisher):
        def publish(self, event):
            super().publish(event)
            if event.event_type is EventType.ORDER_PLACED:
                assert holder["svc"].process_placed(event) is Outcome.PAID
                raise PublishError("timed out after sending")

    svc, processor = make_service(publisher=DeliveredThenFailed())
    holder["svc"] = svc
    # WHEN it is accepted THEN the tombstone's condition fails and the client is told 202 (no error)
    order = svc.accept(priced(svc, valid_order))
    # AND the order is terminal, charged once
    assert svc.get(order.order_id).status is OrderStatus.PAID
    assert processor.charges == 1


def test_event_for_an_order_that_does_not_exist_is_poison_and_never_charged(valid_order):
    svc, processor = make_service()
    _order, event = placed_event(svc, valid_order)
    forged = OrderEvent(EventType.ORDER_PLACED, "no-such-order", "t", {**event.order, "total": "-50.00"})
    with pytest.raises(MalformedEventError, match="does not exist"):
        svc.process_placed(forged)
    assert processor.charges == 0


@pytest.mark.parametrize(
    ("field", "value"), [("total", "0.01"), ("total", "not a number"), ("currency", "JPY"), ("customer_id", "other")]
)
def test_event_that_disagrees_with_the_stored_order_is_poison(valid_order, field, value):
    svc, processor = make_service()
    order, event = placed_event(svc, valid_order)
    forged = OrderEvent(EventType.ORDER_PLACED, order.order_id, "t", {**event.order, field: value})
    with pytest.raises(MalformedEventError, match=field):
        svc.process_placed(forged)
    assert processor.charges == 0 and svc.get(order.order_id).status is OrderStatus.PLACED


def test_no_event_carries_the_payment_token(valid_order):
    svc, _ = make_service()
    _order, event = placed_event(svc, valid_order, payment_token="tok_secret_123")
    svc.process_placed(event)
    assert svc.publisher.events and all("tok_secret_123" not in e.to_message() for e in svc.publisher.events)


def test_redelivery_after_every_dedupe_record_expired_does_not_charge_again(valid_order):
    # GIVEN a charge that went through, then a crash before the state write (the order stays PAYING)
    now = [1_000_000.0]
    svc, processor = make_service(clock=lambda: now[0])
    order, event = placed_event(svc, valid_order)
    real_transition = svc.repository.transition

    def crash_on_terminal_write(order_id, *, target, **kwargs):
        if target in (OrderStatus.PAID, OrderStatus.PAYMENT_FAILED):
            raise ConnectionError("worker killed")
        return real_transition(order_id, target=target, **kwargs)

    svc.repository.transition = crash_on_terminal_write
    with pytest.raises(ConnectionError):
        svc.process_placed(event)
    svc.repository.transition = real_transition
    assert svc.get(order.order_id).status is OrderStatus.PAYING and processor.charges == 1
    # AND within the processor's key window a redelivery adopts the charge
    svc.payments.persistence_store.records.clear()  # the Powertools record expired (idempotencyTtlSeconds)
    now[0] += 3600
    assert svc.process_placed(event) is Outcome.PAID and processor.charges == 1
    assert svc.get(order.order_id).payment_id == processor.ledger.entries()[0].payment_id


def test_an_attempt_older_than_the_processors_key_window_is_never_charged_again(valid_order):
    # GIVEN a charge, a crash before the state write, and 30 days: every time-bound dedupe is gone (the
    # Powertools record, the processor's replay and its lookup by key, 24 h)
    now = [1_000_000.0]
    svc, processor = make_service(clock=lambda: now[0])
    svc.now = lambda: now[0]
    svc.clock = lambda: datetime.fromtimestamp(now[0], UTC).isoformat(timespec="milliseconds")
    order, event = placed_event(svc, valid_order)
    real_transition = svc.repository.transition
    svc.repository.transition = lambda order_id, *, target, **kw: (
        (_ for _ in ()).throw(ConnectionError("worker killed"))
        if target is OrderStatus.PAID
        else real_transition(order_id, target=target, **kw)
    )
    with pytest.raises(ConnectionError):
        svc.process_placed(event)
    svc.repository.transition = real_transition
    svc.payments.persistence_store.records.clear()
    now[0] += 30 * 86400
    assert processor.find(svc.get(order.order_id).payment_key) is None  # forgotten
    # WHEN the message is redelivered (from the DLQ) THEN it is not charged again: it goes to a person
    with pytest.raises(MalformedEventError, match="look the charge up by hand"):
        svc.process_placed(event)
    assert processor.charges == 1 and summarize(processor.ledger.entries()).double_charges == 0
    # AND the reconciler leaves it for review (the StuckOrders alarm) instead of handing it back
    published = len(svc.publisher.events)
    assert svc.reconcile(updated_before="9999-12-31T00:00:00+00:00")["needs_review"] == 1
    assert len(svc.publisher.events) == published and svc.get(order.order_id).status is OrderStatus.PAYING


def test_processing_pays_and_publishes_confirmation(valid_order):
    svc, processor = make_service()
    order, event = placed_event(svc, valid_order)
    assert svc.process_placed(event) is Outcome.PAID
    paid = svc.get(order.order_id)
    assert paid.status is OrderStatus.PAID and paid.payment_id
    assert svc.publisher.events[-1].event_type is EventType.PAYMENT_CONFIRMED
    assert processor.charges == 1


def test_duplicate_delivery_charges_once_and_never_moves_terminal_order(valid_order):
    svc, processor = make_service()
    order, event = placed_event(svc, valid_order)
    outcomes = [svc.process_placed(event) for _ in range(3)]
    assert outcomes == [Outcome.PAID, Outcome.ALREADY_TERMINAL, Outcome.ALREADY_TERMINAL]
    assert processor.charges == 1
    assert svc.get(order.order_id).status is OrderStatus.PAID


def test_concurrent_duplicates_charge_once(valid_order):
    processor = SimulatedPaymentProcessor(slots=5, latency_ms=50)
    payments = IdempotentPayments(processor, in_memory_persistence(), ttl_s=3600)
    payments.register_lambda_context(FixedBudget(60_000))
    catalog = sample_catalog()
    svc = OrderService(
        repository=InMemoryOrderRepository(catalog), publisher=InMemoryPublisher(), payments=payments, catalog=catalog
    )
    _order, event = placed_event(svc, valid_order)
    results: list[object] = []

    def deliver():
        try:
            results.append(svc.process_placed(event))
        except TransientPaymentError as exc:  # "already in progress": redelivered later
            results.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert processor.charges == 1
    assert results.count(Outcome.PAID) == 1
    assert svc.process_placed(event) is Outcome.ALREADY_TERMINAL


def test_declined_card_ends_payment_failed(valid_order):
    svc, _ = make_service()
    order, event = placed_event(svc, valid_order, payment_token="tok_declined")
    assert svc.process_placed(event) is Outcome.PAYMENT_FAILED
    failed = svc.get(order.order_id)
    assert failed.status is OrderStatus.PAYMENT_FAILED and failed.failure_reason == "card_declined"
    assert svc.publisher.events[-1].event_type is EventType.PAYMENT_FAILED


def test_transient_failure_propagates_and_a_retry_can_pay(valid_order):
    svc, processor = make_service(failure_rate=1.0)
    order, event = placed_event(svc, valid_order)
    with pytest.raises(TransientPaymentError):
        svc.process_placed(event)
    assert svc.get(order.order_id).status is OrderStatus.PAYING  # the attempt is recorded
    processor.failure_rate = 0.0
    assert svc.process_placed(event) is Outcome.PAID


def test_sync_path_hands_an_unknown_outcome_to_the_workers_and_never_records_it_failed(valid_order):
    # GIVEN the processor fails every charge
    svc, processor = make_service()
    assert svc.place_and_pay(priced(svc, valid_order)).status is OrderStatus.PAID
    processor.failure_rate = 1.0
    # WHEN a sync checkout meets it
    pending = svc.place_and_pay(priced(svc, valid_order))
    # THEN the order is PAYING (not failed: the charge may have happened) and handed to the workers
    assert pending.status is OrderStatus.PAYING
    handoff = svc.publisher.events[-1]
    assert handoff.event_type is EventType.ORDER_PLACED and handoff.order_id == pending.order_id
    # AND a worker, once the processor is back, pays it once
    processor.failure_rate = 0.0
    assert svc.process_placed(handoff) is Outcome.PAID
    assert summarize(processor.ledger.entries()).charges == 2


def test_sync_path_adopts_a_charge_whose_response_was_lost(valid_order):
    # GIVEN a processor that charges, then loses the answer
    svc, processor = make_service()
    processor.failure_rate, processor.lost_response_share = 1.0, 1.0
    pending = svc.place_and_pay(priced(svc, valid_order))
    assert pending.status is OrderStatus.PAYING and summarize(processor.ledger.entries()).charges == 1
    # WHEN the worker takes the hand-off while the processor still loses every answer
    assert svc.process_placed(svc.publisher.events[-1]) is Outcome.PAID
    # THEN it found the charge by key: one checkout, one charge
    assert summarize(processor.ledger.entries()).to_dict()["charges"] == 1


def test_sync_path_error_after_the_charge_is_not_a_failure(valid_order):
    # GIVEN the state write after the charge fails
    svc, processor = make_service()
    real = svc.repository.transition

    def failing(order_id, *, expected, target, **kw):
        if target is OrderStatus.PAID:
            raise RuntimeError("table unavailable")
        return real(order_id, expected=expected, target=target, **kw)

    svc.repository.transition = failing
    pending = svc.place_and_pay(priced(svc, valid_order))
    # THEN the answer is the order as it stands, handed off; the worker adopts the charge
    assert pending.status is OrderStatus.PAYING
    svc.repository.transition = real
    assert svc.process_placed(svc.publisher.events[-1]) is Outcome.PAID
    assert summarize(processor.ledger.entries()).charges == 1


def test_accept_whose_tombstone_fails_is_answered_as_accepted(valid_order):
    # GIVEN the publish fails, and so does the tombstone write after it
    svc, _ = make_service(publisher=InMemoryPublisher(fail=True))

    def failing(*args, **kw):
        raise RuntimeError("throttled")

    svc.repository.transition = failing
    # THEN accept returns the order (a 202: a worker may have it), never a PublishError (a 5xx)
    order = svc.accept(priced(svc, valid_order), checkout_key="k-1")
    assert order.status is OrderStatus.PLACED and svc.get(order.order_id).checkout_key == "k-1"


def test_backpressure_rejects_above_limit_only(valid_order):
    depth = FixedDepth(101)
    svc, _ = make_service(depth=depth, limit=100)
    with pytest.raises(Overloaded):
        svc.accept(priced(svc, valid_order))
    assert svc.repository.all() == [] and svc.publisher.events == []
    depth.value = 100
    svc.accept(priced(svc, valid_order))


def test_unknown_order_is_not_found():
    svc, _ = make_service()
    with pytest.raises(OrderNotFoundError):
        svc.get("nope")


def test_record_handler_ignores_other_event_types_and_rejects_garbage(valid_order):
    svc, processor = make_service()
    order, event = placed_event(svc, valid_order)
    other = OrderEvent(EventType.PAYMENT_CONFIRMED, order.order_id, "t", event.order)
    assert process_message(svc, other.to_message()) is None
    assert processor.charges == 0
    for body in (
        "not json",
        "[]",
        '{"event_type": "order_placed"}',
        '{"event_type": "nope", "order_id": "x", "order": {}}',
    ):
        with pytest.raises(MalformedEventError):
            process_message(svc, body)
    envelope = '{"Type": "Notification", "Message": ' + __import__("json").dumps(event.to_message()) + "}"
    assert process_message(svc, envelope) is Outcome.PAID


def test_without_the_lookup_an_expired_key_would_charge_twice(valid_order):
    # The guard above must be able to fail: a processor past its key window charges a repeated key again.
    now = [1_000_000.0]
    processor = SimulatedPaymentProcessor(slots=1, latency_ms=0, clock=lambda: now[0])
    request = PaymentRequest("o-9", __import__("decimal").Decimal("5.00"), "USD", "tok_visa", idempotency_key="k-9")
    processor.charge(request)
    now[0] += 2 * 86400
    processor.charge(request)
    assert summarize(processor.ledger.entries()).double_charges == 1


def test_every_published_event_follows_the_documented_contract(valid_order):
    # GIVEN the published contract (docs/events.schema.json)
    import json
    from pathlib import Path

    import jsonschema

    schema = json.loads((Path(__file__).resolve().parents[2] / "docs" / "events.schema.json").read_text())
    checker = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    # WHEN orders are placed, paid and declined
    svc, _ = make_service()
    for token in ("tok_visa", "tok_declined"):
        _order, event = placed_event(svc, valid_order, payment_token=token)
        svc.process_placed(event)
    # THEN every event the service published validates, each type at least once
    messages = [json.loads(e.to_message()) for e in svc.publisher.events]
    for message in messages:
        checker.validate(message)
    kinds = {m["event_type"] for m in messages}
    assert kinds == {"order_placed", "payment_started", "payment_confirmed", "payment_failed"}
    # AND the schema would refuse an event carrying the payment token
    leaked = {**messages[0], "order": {**messages[0]["order"], "payment_token": "tok_visa"}}
    assert not checker.is_valid(leaked)


def test_the_reconciler_resolves_each_kind_of_stuck_order_once_and_leaves_fresh_ones(valid_order):
    # GIVEN orders left behind: PLACED whose event was lost, PAYING charged (answer lost), PAYING not charged
    svc, processor = make_service()
    lost_event = svc.accept(priced(svc, valid_order))
    processor.failure_rate, processor.lost_response_share = 1.0, 1.0
    charged = svc.place_and_pay(priced(svc, valid_order))
    processor.lost_response_share = 0.0
    not_charged = svc.place_and_pay(priced(svc, valid_order))
    processor.failure_rate = 0.0
    svc.publisher.events.clear()
    # WHEN the reconciler runs with a bound that excludes nothing yet: THEN nothing is touched
    assert svc.reconcile(updated_before="2000-01-01")["found"] == 0
    # WHEN it runs past them
    counts = svc.reconcile(updated_before="9999-01-01")
    # THEN the charged one is adopted (PAID, its outcome published), the others go back to the workers
    assert counts == {"found": 3, "adopted": 1, "republished": 2, "needs_review": 0, "failed": 0}
    assert svc.get(charged.order_id).status is OrderStatus.PAID
    republished = {e.order_id for e in svc.publisher.events if e.event_type is EventType.ORDER_PLACED}
    assert republished == {lost_event.order_id, not_charged.order_id}
    # AND the workers pay those once each: one charge per order in the ledger
    for event in [e for e in svc.publisher.events if e.event_type is EventType.ORDER_PLACED]:
        svc.process_placed(event)
    assert summarize(processor.ledger.entries()).to_dict()["charges"] == 3
    assert svc.reconcile(updated_before="9999-01-01")["found"] == 0
