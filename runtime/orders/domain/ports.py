"""The small protocols the domain depends on; adapters implement them."""

from __future__ import annotations

from typing import Any, Protocol

from orders.domain.events import OrderEvent
from orders.domain.models import Order, OrderStatus
from orders.domain.payment import PaymentRequest, PaymentResult


class OrderRepository(Protocol):
    def create(self, order: Order) -> None:
        """Store a new order; fails if the id already exists."""

    def get(self, order_id: str) -> Order | None: ...

    def transition(
        self, order_id: str, *, expected: OrderStatus, target: OrderStatus, at: str, attrs: dict[str, Any]
    ) -> Order | None:
        """Conditionally move ``expected -> target``; the updated order, or None if it was not in ``expected``."""

    def stuck(self, status: OrderStatus, updated_before: str, limit: int) -> list[Order]:
        """Orders in ``status`` (PLACED or PAYING) not updated since ``updated_before``: from an index of the
        non-terminal orders only, never a scan."""


class EventPublisher(Protocol):
    def publish(self, event: OrderEvent) -> None:
        """Publish or raise PublishError."""


class PaymentGateway(Protocol):
    def charge(self, request: PaymentRequest) -> PaymentResult:
        """Approve or decline; raise TransientPaymentError when a retry may succeed.

        The processor charges an ``idempotency_key`` at most once: a repeat gets the first result.
        """

    def find(self, idempotency_key: str) -> PaymentResult | None:
        """The result of a charge made with this key, or None if the processor holds none (lookup by reference)."""


class QueueDepthProbe(Protocol):
    def depth(self) -> int:
        """Approximate number of orders waiting (may be cached briefly)."""
