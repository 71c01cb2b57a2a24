"""Use cases: accept an order, pay it (async or inline), read it back."""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from orders.domain.catalog import Reservation, price_cart
from orders.domain.errors import (
    ContendedError,
    FutureSequenceError,
    InvalidTransitionError,
    MalformedEventError,
    OrderError,
    OrderNotFoundError,
    OutcomeUnknownError,
    PublishError,
    SoldOutError,
    StockShortError,
    TransientPaymentError,
)
from orders.domain.events import EventType, OrderEvent
from orders.domain.models import (
    Cart,
    LogEntry,
    Order,
    OrderItem,
    OrderRequest,
    OrderStatus,
    check_transition,
    log_entry,
)
from orders.domain.payment import PaymentRequest, PaymentResult, payment_key
from orders.domain.ports import Catalog, EventPublisher, OrderRepository, PaymentGateway, QueueDepthProbe

RELEASING = frozenset({OrderStatus.PAYMENT_FAILED, OrderStatus.REJECTED})  # an order that gives its stock back
CONTENDED_TRIES = 5  # transaction conflicts on one stock item, retried before the checkout gives up (5xx)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_order_id() -> str:
    return str(uuid.uuid4())


class Outcome(StrEnum):
    """What processing one order_placed event did."""

    PAID = "paid"
    PAYMENT_FAILED = "payment_failed"
    ALREADY_TERMINAL = "already_terminal"
    REJECTED = "rejected"


class Overloaded(Exception):
    """Backpressure: the backlog is above the configured limit."""

    def __init__(self, depth: int, limit: int) -> None:
        super().__init__(f"queue depth {depth} exceeds {limit}")
        self.depth = depth
        self.limit = limit


@dataclass
class OrderService:
    repository: OrderRepository
    publisher: EventPublisher
    payments: PaymentGateway
    depth_probe: QueueDepthProbe | None = None
    max_queue_depth: int = 0
    clock: Callable[[], str] = utc_now
    id_factory: Callable[[], str] = new_order_id
    catalog: Catalog | None = None
    payment_key_window_s: float = 24 * 3600  # how long the processor replays and finds a key (Stripe: 24 h)
    now: Callable[[], float] = time.time
    rng: random.Random = dataclasses.field(default_factory=random.Random)
    sleep: Callable[[float], None] = time.sleep

    # -- price ----------------------------------------------------------------
    def price(self, cart: Cart) -> OrderRequest:
        """The order as the catalog prices it: the client's displayed prices are checked, never used.

        Raises UnknownSkuError, PriceChangedError or ValidationError; nothing is written.
        """
        if self.catalog is None:
            raise RuntimeError("no catalog: the service cannot price an order")
        products = self.catalog.products([line.sku for line in cart.lines])
        currency, _ = price_cart(cart.lines, products, cart.currency)
        return OrderRequest(
            customer_id=cart.customer_id,
            items=tuple(OrderItem(sku=line.sku, qty=line.qty, price=products[line.sku].price) for line in cart.lines),
            currency=currency,
            payment_token=cart.payment_token,
            shards={line.sku: products[line.sku].shards for line in cart.lines},
        )

    def _create(self, order: Order, shards: dict[str, int] | None) -> Order:
        """Store the order with its stock reserved in the same write, or raise SoldOutError (nothing written).

        Each SKU's shard is picked at random; a short shard is struck off for that SKU and another tried,
        so "sold out" means every shard of the SKU was short for the quantity.
        """
        if not shards:
            self._store(order)
            return order
        untried = {sku: self.rng.sample(range(n), n) for sku, n in shards.items()}
        picked = {sku: left.pop() for sku, left in untried.items()}
        conflicts = 0
        while True:
            held = tuple(Reservation(i.sku, picked[i.sku], i.qty) for i in order.items if i.sku in picked)
            candidate = dataclasses.replace(order, reservations=held)
            try:
                self._store(candidate)
                return candidate
            except StockShortError as short:
                if not untried[short.sku]:
                    raise SoldOutError(short.sku) from None
                picked[short.sku] = untried[short.sku].pop()
            except ContendedError:
                conflicts += 1
                if conflicts >= CONTENDED_TRIES:
                    raise
                self.sleep(self.rng.uniform(0, 0.02 * conflicts))  # jittered: the contenders spread out

    def _store(self, order: Order) -> None:
        """``repository.create``, and if it fails in a way that may have landed (a timeout, a lost answer),
        close what may exist: the checkout is answered 5xx, so no worker or reconciler may charge it.

        The domain's own refusals (short stock, a conflict, a duplicate id) wrote nothing of this order.
        """
        try:
            self.repository.create(order)
        except (StockShortError, ContendedError, OrderError):
            raise
        except Exception:
            with contextlib.suppress(Exception):  # the original error is the answer; a failed close adds nothing
                self._tombstone(order, "not_created")
            raise

    def _tombstone(self, order: Order, reason: str) -> Order | None:
        """PLACED -> REJECTED (its stock given back): the order's client is told 5xx, so nobody charges it.
        None when the order is not PLACED (a worker took it) or does not exist."""
        return self.repository.transition(
            order.order_id,
            expected=OrderStatus.PLACED,
            target=OrderStatus.REJECTED,
            at=self.clock(),
            attrs={"failure_reason": reason},
            release=order.reservations,
        )

    # -- accept ---------------------------------------------------------------
    def _new_order(self, request: OrderRequest, checkout_key: str | None) -> Order:
        now = self.clock()
        return Order(
            checkout_key=checkout_key,
            order_id=self.id_factory(),
            customer_id=request.customer_id,
            items=request.items,
            currency=request.currency,
            total=request.total,
            payment_token=request.payment_token,
            status=OrderStatus.PLACED,
            created_at=now,
            updated_at=now,
            log=(log_entry(1, OrderStatus.PLACED, now, {}),),
        )

    def check_capacity(self) -> None:
        """Raise Overloaded when backpressure is on and the backlog is above its limit."""
        if self.max_queue_depth > 0 and self.depth_probe is not None:
            depth = self.depth_probe.depth()
            if depth > self.max_queue_depth:
                raise Overloaded(depth, self.max_queue_depth)

    def accept(self, request: OrderRequest, *, checkout_key: str | None = None) -> Order:
        """Record the order as PLACED (its stock reserved in the same write) and publish order_placed.

        If the publish fails, the order is tombstoned (PLACED -> REJECTED, conditional)
        and the caller gets the PublishError (5xx): a worker never charges a REJECTED
        order. A publish can fail ambiguously (sent, then an error): if a worker has
        already moved the order on, the tombstone's condition fails, the event was
        delivered after all and the order is returned as accepted. If the tombstone
        itself cannot be written, nobody knows whether the event went out: the order
        is returned as accepted (202, its status URL), never as a 5xx, since a worker
        may charge it. So a 5xx answer means never charged.
        """
        self.check_capacity()
        order = self._create(self._new_order(request, checkout_key), dict(request.shards))
        try:
            self.publisher.publish(self._event(EventType.ORDER_PLACED, order))
        except PublishError:
            try:
                rejected = self._tombstone(order, "not_published")
            except Exception:  # the tombstone failed too: the outcome is unknown, so never a 5xx
                return order
            if rejected is None:
                return order  # a worker already took it: the event was published
            raise
        return order

    # -- read -----------------------------------------------------------------
    def get(self, order_id: str) -> Order:
        order = self.repository.get(order_id)
        if order is None:
            raise OrderNotFoundError(order_id)
        return order

    def events(self, order_id: str, after: int = 0) -> tuple[LogEntry, ...]:
        """The order's log after sequence ``after`` (catch-up for a client that saw up to ``after``)."""
        order = self.get(order_id)
        if after > order.seq:
            raise FutureSequenceError(order_id, after, order.seq)
        return order.events_after(after)

    # -- pay ------------------------------------------------------------------
    def process_placed(self, event: OrderEvent) -> Outcome:
        """Pay for an order_placed event. Safe to call any number of times, at any age.

        The order record is the source of truth: an event for an order that does
        not exist, or whose amount, currency or customer disagree with the record,
        is poison (MalformedEventError, so it ends in a DLQ) and is never charged.
        A REJECTED order (its client was told 5xx) is never charged. A terminal
        order is never charged again. TransientPaymentError propagates so the
        message is redelivered.
        """
        order = self.repository.get(event.order_id)
        if order is None:
            raise MalformedEventError(f"order {event.order_id} does not exist")
        check_event_matches(event, order)
        if order.status is OrderStatus.REJECTED:
            return Outcome.REJECTED
        if order.status.terminal:
            # Re-publish the outcome: a crash between the state write and the
            # publish must not lose the event (consumers are idempotent).
            self._publish_outcome(order)
            return Outcome.ALREADY_TERMINAL
        return self._pay(order)[0]

    def place_and_pay(self, request: OrderRequest, *, checkout_key: str | None = None) -> Order:
        """The synchronous baseline: record, pay inline, answer with the final state.

        Any error once the order exists (a processor timeout, a lost response, a failed state write after
        the charge) leaves the outcome unknown: the charge may have happened. The order is never recorded as
        failed for it; it is handed to the asynchronous path (order_placed published for it), whose worker
        looks the charge up by key before it charges with the same key, and the answer is the order as it
        stands (PAYING: 202 with its status URL), never "failed, retry".
        """
        order = self._create(self._new_order(request, checkout_key), dict(request.shards))
        try:
            _, final = self._pay(order)
        except Exception:
            return self._hand_off(order)
        return final

    def _hand_off(self, order: Order) -> Order:
        """Give an order whose payment outcome is unknown to the workers; return it as it stands."""
        try:
            current = self.repository.get(order.order_id) or order
        except Exception:
            current = order
        if not current.status.terminal:
            # If this fails too the order waits, non-terminal, for the reconciler: still never a 5xx.
            with contextlib.suppress(Exception):
                self.publisher.publish(self._event(EventType.ORDER_PLACED, current))
        return current

    # -- reconcile ------------------------------------------------------------
    def reconcile(self, *, updated_before: str, limit: int = 500) -> dict[str, int]:
        """Bring orders left non-terminal to a terminal state, safely; counts of what was found and done.

        PLACED for long: its order_placed may never have gone out (a publish lost after a failed
        tombstone): publish it again. PAYING for long (a sync checkout whose outcome was unknown, a worker
        that crashed, a message dead-lettered): ask the processor by key; a charge it holds is adopted (the
        order moves to its outcome, which is published); otherwise the order goes back to the workers, who
        look it up again before charging with the same key. Every step is one a redelivery may repeat.
        """
        counts = {"found": 0, "adopted": 0, "republished": 0, "needs_review": 0, "failed": 0}
        for status in (OrderStatus.PLACED, OrderStatus.PAYING):
            for order in self.repository.stuck(status, updated_before, limit):
                counts["found"] += 1
                try:
                    counts[self._resolve_stuck(order)] += 1
                except Exception:
                    counts["failed"] += 1  # the next run tries again
        return counts

    def _resolve_stuck(self, order: Order) -> str:
        if order.status is OrderStatus.PAYING:
            try:
                result = self.payments.find(order.payment_key or payment_key(order.order_id))
            except TransientPaymentError:
                result = None  # still being answered: the workers will find it
            if result is not None:
                updated = self._settle(order, result)
                if updated is not None:
                    self._publish_outcome(updated)
                    return "adopted"
            elif self._beyond_key_window(order):
                return "needs_review"  # the StuckOrders alarm stays on it; see OutcomeUnknownError
        self.publisher.publish(self._event(EventType.ORDER_PLACED, order))
        return "republished"

    def _beyond_key_window(self, order: Order) -> bool:
        """The order's payment attempt is older than the processor remembers keys: a lookup that finds
        nothing no longer proves there was no charge."""
        started = next((e.occurred_at for e in reversed(order.log) if e.status is OrderStatus.PAYING), None)
        if started is None:
            return False
        return self.now() - datetime.fromisoformat(started).timestamp() > self.payment_key_window_s

    def _pay(self, order: Order) -> tuple[Outcome, Order]:
        """Record the attempt (PAYING), charge with the order's key, move to the terminal state, publish.

        An order already PAYING was being paid by a delivery that crashed or is still
        running: the processor is asked for a charge with the same key first, so a
        charge made before a lost state write is adopted, not repeated, however old.
        """
        key = payment_key(order.order_id)
        fresh = False
        if order.status is OrderStatus.PLACED:
            paying = self.repository.transition(
                order.order_id,
                expected=OrderStatus.PLACED,
                target=OrderStatus.PAYING,
                at=self.clock(),
                attrs={"payment_key": key},
            )
            if paying is None:
                current = self.get(order.order_id)
                if current.status is OrderStatus.REJECTED:
                    return Outcome.REJECTED, current
                if current.status.terminal:
                    return self._already_terminal(current)
                order = current
            else:
                order, fresh = paying, True
                # For trackers only: a lost publish costs a live push, never the payment (the log has it).
                with contextlib.suppress(PublishError):
                    self.publisher.publish(self._event(EventType.PAYMENT_STARTED, order))
        if order.status is not OrderStatus.PAYING:
            raise InvalidTransitionError(f"{order.order_id} is {order.status.value}, expected PLACED or PAYING")
        result = None if fresh else self.payments.find(key)
        if result is None and not fresh and self._beyond_key_window(order):
            # Charging again could charge twice, and failing it could keep money taken: a person decides.
            raise OutcomeUnknownError(
                f"order {order.order_id} has been PAYING longer than the processor remembers its key "
                f"({self.payment_key_window_s:.0f} s): look the charge up by hand before anyone retries it"
            )
        if result is None:
            result = self.payments.charge(
                PaymentRequest(
                    order_id=order.order_id,
                    amount=order.total,
                    currency=order.currency,
                    token=order.payment_token,
                    idempotency_key=key,
                )
            )
        check_transition(order.status, outcome_of(result)[0])
        updated = self._settle(order, result)
        if updated is None:
            # Another delivery reached a terminal state first; report what actually happened.
            current = self.get(order.order_id)
            if not current.status.terminal:
                raise InvalidTransitionError(f"{order.order_id} is {current.status.value}, expected PAYING")
            return self._already_terminal(current)
        self._publish_outcome(updated)
        return (Outcome.PAID if result.approved else Outcome.PAYMENT_FAILED), updated

    def _settle(self, order: Order, result: PaymentResult) -> Order | None:
        """PAYING -> the outcome the processor gave; a failed order gives all its stock back in the same
        (conditional) write, so a redelivery never gives it back twice. None if it was no longer PAYING."""
        target, attrs = outcome_of(result)
        return self.repository.transition(
            order.order_id,
            expected=OrderStatus.PAYING,
            target=target,
            at=self.clock(),
            attrs=attrs,
            release=order.reservations if target in RELEASING else (),
        )

    def _already_terminal(self, order: Order) -> tuple[Outcome, Order]:
        self._publish_outcome(order)
        return Outcome.ALREADY_TERMINAL, order

    def _publish_outcome(self, order: Order) -> None:
        event = outcome_event(order, self.clock())
        if event is not None:
            self.publisher.publish(event)

    def _event(self, kind: EventType, order: Order) -> OrderEvent:
        return order_event(kind, order, self.clock())


def order_event(kind: EventType, order: Order, occurred_at: str) -> OrderEvent:
    # The payment token stays in the order record: events reach every subscriber of the topic.
    return OrderEvent(
        event_type=kind, order_id=order.order_id, occurred_at=occurred_at, order=order.to_dict(), seq=order.seq
    )


def outcome_event(order: Order, occurred_at: str) -> OrderEvent | None:
    """payment_confirmed or payment_failed for a terminal order; None for any other state."""
    if order.status not in (OrderStatus.PAID, OrderStatus.PAYMENT_FAILED):
        return None
    kind = EventType.PAYMENT_CONFIRMED if order.status is OrderStatus.PAID else EventType.PAYMENT_FAILED
    return order_event(kind, order, occurred_at)


def outcome_of(result: PaymentResult) -> tuple[OrderStatus, dict[str, str | None]]:
    """The terminal state a processor's answer moves an order to, and what the transition records."""
    if result.approved:
        return OrderStatus.PAID, {"payment_id": result.payment_id}
    return OrderStatus.PAYMENT_FAILED, {"failure_reason": result.decline_reason or "declined"}


def check_event_matches(event: OrderEvent, order: Order) -> None:
    """An event whose fields disagree with the stored order is forged or corrupt: poison."""
    from decimal import Decimal, InvalidOperation

    claimed = event.order
    try:
        total_differs = "total" in claimed and Decimal(str(claimed["total"])) != order.total
    except (InvalidOperation, ValueError):
        total_differs = True
    for name, differs in (
        ("total", total_differs),
        ("currency", "currency" in claimed and claimed["currency"] != order.currency),
        ("customer_id", "customer_id" in claimed and claimed["customer_id"] != order.customer_id),
    ):
        if differs:
            raise MalformedEventError(f"event for {order.order_id} disagrees with the order on {name}")
