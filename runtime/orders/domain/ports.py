"""The small protocols the domain depends on; adapters implement them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from orders.domain.catalog import Product, Reservation
from orders.domain.events import OrderEvent
from orders.domain.models import Order, OrderStatus
from orders.domain.payment import PaymentRequest, PaymentResult


class OrderRepository(Protocol):
    def create(self, order: Order) -> None:
        """Store a new order and take its ``reservations`` from stock, in one atomic write; fails if the id
        already exists (DuplicateOrderError), StockShortError if a shard holds less than its quantity, or
        ContendedError if a concurrent write met it (nothing written in either case)."""

    def get(self, order_id: str) -> Order | None: ...

    def transition(
        self,
        order_id: str,
        *,
        expected: OrderStatus,
        target: OrderStatus,
        at: str,
        attrs: dict[str, Any],
        release: Sequence[Reservation] = (),
    ) -> Order | None:
        """Conditionally move ``expected -> target`` and give ``release`` back to stock in the same write;
        the updated order, or None if it was not in ``expected`` (then nothing is given back)."""

    def stuck(self, status: OrderStatus, updated_before: str, limit: int) -> list[Order]:
        """Orders in ``status`` (PLACED or PAYING) not updated since ``updated_before``: from an index of the
        non-terminal orders only, never a scan."""


class Catalog(Protocol):
    def products(self, skus: Iterable[str]) -> dict[str, Product]:
        """The products of these SKUs that are on sale (a SKU not on sale is absent); may be cached briefly."""

    def listing(self) -> list[dict[str, Any]]:
        """Every product with its stock left, as a sale page shows it; may be cached briefly."""


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
