"""Use cases: accept an order, pay it (async or inline), read it back."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from orders.domain.errors import InvalidTransitionError, OrderNotFoundError, PublishError, TransientPaymentError
from orders.domain.events import EventType, OrderEvent
from orders.domain.models import Order, OrderRequest, OrderStatus, check_transition, order_from_dict
from orders.domain.payment import PaymentRequest, PaymentResult
from orders.domain.ports import EventPublisher, OrderRepository, PaymentGateway, QueueDepthProbe


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_order_id() -> str:
    return str(uuid.uuid4())


class Outcome(StrEnum):
    """What processing one order_placed event did."""

    PAID = "paid"
    PAYMENT_FAILED = "payment_failed"
    ALREADY_TERMINAL = "already_terminal"


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

    # -- accept ---------------------------------------------------------------
    def _new_order(self, request: OrderRequest) -> Order:
        now = self.clock()
        return Order(
            order_id=self.id_factory(),
            customer_id=request.customer_id,
            items=request.items,
            currency=request.currency,
            total=request.total,
            payment_token=request.payment_token,
            status=OrderStatus.PLACED,
            created_at=now,
            updated_at=now,
        )

    def check_capacity(self) -> None:
        """Raise Overloaded when backpressure is on and the backlog is above its limit."""
        if self.max_queue_depth > 0 and self.depth_probe is not None:
            depth = self.depth_probe.depth()
            if depth > self.max_queue_depth:
                raise Overloaded(depth, self.max_queue_depth)

    def accept(self, request: OrderRequest) -> Order:
        """Record the order as PLACED and publish order_placed.

        If the publish fails the PLACED record is removed again, so no order is
        left that no worker will ever see; the caller gets the PublishError.
        """
        self.check_capacity()
        order = self._new_order(request)
        self.repository.create(order)
        try:
            self.publisher.publish(self._event(EventType.ORDER_PLACED, order))
        except PublishError:
            self.repository.discard(order.order_id, expected=OrderStatus.PLACED)
            raise
        return order

    # -- read -----------------------------------------------------------------
    def get(self, order_id: str) -> Order:
        order = self.repository.get(order_id)
        if order is None:
            raise OrderNotFoundError(order_id)
        return order

    # -- pay ------------------------------------------------------------------
    def process_placed(self, event: OrderEvent) -> Outcome:
        """Pay for an order_placed event. Safe to call any number of times.

        A terminal order is never charged or moved again; the payment port is
        expected to be idempotent per order id, so a crash between charge and
        state write does not charge twice on redelivery.
        TransientPaymentError propagates so the message is redelivered.
        """
        order = self.repository.get(event.order_id)
        if order is None:
            # The event carries the order; the record is written before publishing,
            # so this only happens if the read model lost it. Rebuild, don't drop.
            order = order_from_dict({**event.order, "status": OrderStatus.PLACED.value})
            self.repository.create(order)
        if order.status.terminal:
            # Re-publish the outcome: a crash between the state write and the
            # publish must not lose the event (consumers are idempotent).
            self._publish_outcome(order)
            return Outcome.ALREADY_TERMINAL
        return self._pay(order)[0]

    def place_and_pay(self, request: OrderRequest) -> Order:
        """The synchronous baseline: record, pay inline, answer with the final state."""
        order = self._new_order(request)
        self.repository.create(order)
        try:
            _, final = self._pay(order)
        except TransientPaymentError:
            # No worker will ever see this order: close it rather than leave it PLACED.
            self.repository.transition(
                order.order_id,
                expected=OrderStatus.PLACED,
                target=OrderStatus.PAYMENT_FAILED,
                at=self.clock(),
                attrs={"failure_reason": "processor_unavailable"},
            )
            raise
        return final

    def _pay(self, order: Order) -> tuple[Outcome, Order]:
        """Charge, move the order to its terminal state, publish the outcome; returns the final order."""
        result: PaymentResult = self.payments.charge(
            PaymentRequest(
                order_id=order.order_id, amount=order.total, currency=order.currency, token=order.payment_token
            )
        )
        if result.approved:
            target, attrs = OrderStatus.PAID, {"payment_id": result.payment_id}
        else:
            target, attrs = OrderStatus.PAYMENT_FAILED, {"failure_reason": result.decline_reason or "declined"}
        check_transition(order.status, target)
        updated = self.repository.transition(
            order.order_id, expected=OrderStatus.PLACED, target=target, at=self.clock(), attrs=attrs
        )
        if updated is None:
            # Another delivery reached a terminal state first; report what actually happened.
            current = self.get(order.order_id)
            if not current.status.terminal:
                raise InvalidTransitionError(f"{order.order_id} is {current.status.value}, expected PLACED")
            self._publish_outcome(current)
            return Outcome.ALREADY_TERMINAL, current
        self._publish_outcome(updated)
        return (Outcome.PAID if result.approved else Outcome.PAYMENT_FAILED), updated

    def _publish_outcome(self, order: Order) -> None:
        kind = EventType.PAYMENT_CONFIRMED if order.status is OrderStatus.PAID else EventType.PAYMENT_FAILED
        self.publisher.publish(self._event(kind, order))

    def _event(self, kind: EventType, order: Order) -> OrderEvent:
        body = order.to_dict()
        body["payment_token"] = order.payment_token
        return OrderEvent(event_type=kind, order_id=order.order_id, occurred_at=self.clock(), order=body)
