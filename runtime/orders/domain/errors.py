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
