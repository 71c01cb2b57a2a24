"""Explicit order event types carried on SNS (message attribute ``event_type``).

Delivery is at-least-once: every consumer must be idempotent, and this
project's worker is (duplicate deliveries never charge twice).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from orders.domain.errors import MalformedEventError

EVENT_TYPE_ATTRIBUTE = "event_type"
SCHEMA_VERSION = 2  # docs/events.md: the contract every consumer relies on


class EventType(StrEnum):
    ORDER_PLACED = "order_placed"
    PAYMENT_STARTED = "payment_started"
    PAYMENT_CONFIRMED = "payment_confirmed"
    PAYMENT_FAILED = "payment_failed"


@dataclass(frozen=True, slots=True)
class OrderEvent:
    event_type: EventType
    order_id: str
    occurred_at: str
    order: Mapping[str, Any]
    event_id: str = ""
    seq: int = 0  # the order's log sequence this event announces (0: published before the log existed)

    def __post_init__(self) -> None:
        if not self.event_id:
            object.__setattr__(self, "event_id", str(uuid.uuid4()))

    def to_message(self) -> str:
        return json.dumps(
            {
                "schema_version": SCHEMA_VERSION,
                "event_id": self.event_id,
                "event_type": self.event_type.value,
                "order_id": self.order_id,
                "occurred_at": self.occurred_at,
                "seq": self.seq,
                "order": dict(self.order),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_message(cls, body: str) -> OrderEvent:
        """Parse a published event; anything unusable is a MalformedEventError."""
        try:
            data = json.loads(body)
        except (TypeError, ValueError) as exc:
            raise MalformedEventError(f"body is not JSON: {exc}") from None
        if isinstance(data, dict) and data.get("Type") == "Notification" and "Message" in data:
            # SNS envelope (subscription without raw message delivery).
            return cls.from_message(data["Message"])
        if not isinstance(data, dict):
            raise MalformedEventError("body is not a JSON object")
        try:
            event_type = EventType(data["event_type"])
            order_id = data["order_id"]
            order = data["order"]
        except (KeyError, ValueError) as exc:
            raise MalformedEventError(f"missing or unknown field: {exc}") from None
        if not isinstance(order_id, str) or not order_id or not isinstance(order, dict):
            raise MalformedEventError("order_id must be a string and order an object")
        return cls(
            event_type=event_type,
            order_id=order_id,
            occurred_at=str(data.get("occurred_at", "")),
            order=order,
            event_id=str(data.get("event_id", "")),
            seq=data["seq"] if isinstance(data.get("seq"), int) and data["seq"] >= 0 else 0,
        )
