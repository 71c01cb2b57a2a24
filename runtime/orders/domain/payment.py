"""What the domain asks of a payment processor, independent of which one."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """One charge. ``order_id`` doubles as the processor-side idempotency key."""

    order_id: str
    amount: Decimal
    currency: str
    token: str


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
