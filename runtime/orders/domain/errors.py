"""Errors the domain raises; entry points map them to HTTP codes or retries."""

from __future__ import annotations


class OrderError(Exception):
    """Base class for every error the domain raises on purpose."""


class ValidationError(OrderError):
    """The order is malformed. ``field`` names the offending field (dotted path)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PayloadTooLargeError(OrderError):
    """The request body is larger than an order can be."""


class OrderNotFoundError(OrderError):
    """No order with this id exists in the read model."""


class FutureSequenceError(OrderError):
    """A client claims to have seen a sequence number the order has not reached."""

    def __init__(self, order_id: str, after: int, last: int) -> None:
        super().__init__(f"after={after} is beyond order {order_id}'s last event ({last})")
        self.after = after
        self.last = last


class InvalidTransitionError(OrderError):
    """The order is not in a state that allows the requested transition."""


class PublishError(OrderError):
    """An event could not be published; the caller must not report success."""


class TransientPaymentError(OrderError):
    """The processor failed in a way that may succeed on retry (redelivery retries it)."""


class MalformedEventError(OrderError):
    """A message carries no usable order event; retrying it cannot help."""


class OutcomeUnknownError(MalformedEventError):
    """An order PAYING for longer than the processor remembers its key, whose lookup finds nothing: a
    retry could charge twice, so the message goes to the DLQ and a person checks the processor."""


class UnknownSkuError(ValidationError):
    """The cart names a SKU the catalog does not sell."""

    def __init__(self, sku: str, field: str) -> None:
        super().__init__(field, f"{sku} is not in the catalog")
        self.sku = sku


class PriceChangedError(OrderError):
    """The price the client displayed is not the catalog's: nothing was written; the current price is told."""

    def __init__(self, sku: str, price: object, currency: str) -> None:
        super().__init__(f"{sku} now costs {price} {currency}")
        self.sku, self.price, self.currency = sku, price, currency


class SoldOutError(OrderError):
    """Not enough stock of ``sku`` is left for the quantity asked: nothing was written or reserved."""

    def __init__(self, sku: str) -> None:
        super().__init__(f"{sku} is sold out")
        self.sku = sku


class StockShortError(OrderError):
    """One stock shard of ``sku`` holds less than the quantity (a repository tells the service, which falls
    over to another shard)."""

    def __init__(self, sku: str, shard: int) -> None:
        super().__init__(f"shard {shard} of {sku} is short")
        self.sku, self.shard = sku, shard


class ContendedError(OrderError):
    """The write met a concurrent one on the same items (a DynamoDB transaction conflict): retry it."""
