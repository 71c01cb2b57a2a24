"""What the domain asks of a payment processor, independent of which one."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """One charge. ``idempotency_key`` is sent to the processor, which charges a key at most once."""

    order_id: str
    amount: Decimal
    currency: str
    token: str
    idempotency_key: str


def payment_key(order_id: str) -> str:
    """The processor-side idempotency key of an order's payment: the same on every delivery, at any age."""
    return f"order-payment:{order_id}"


@dataclass(frozen=True, slots=True)
class PaymentResult:
    approved: bool
    payment_id: str | None = None
    decline_reason: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"approved": self.approved, "payment_id": self.payment_id, "decline_reason": self.decline_reason}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> PaymentResult:
        pid, reason = data.get("payment_id"), data.get("decline_reason")
        return cls(
            approved=bool(data["approved"]),
            payment_id=str(pid) if pid is not None else None,
            decline_reason=str(reason) if reason is not None else None,
        )
