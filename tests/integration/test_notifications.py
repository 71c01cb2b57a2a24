"""The notifications example consumer: one e-mail per order however often its event is delivered (moto)."""

from __future__ import annotations

from typing import Any

from orders.domain.events import EventType, OrderEvent
from tests.helpers import sqs_event


def event(kind: EventType, order_id: str, seq: int) -> str:
    order = {"order_id": order_id, "customer_id": "cust-7", "total": "19.99", "status": "PAID"}
    return OrderEvent(kind, order_id, "2026-11-29T09:00:00.000+00:00", order, seq=seq).to_message()


def test_duplicates_send_one_email_per_order_and_other_events_none(aws, lambda_context, monkeypatch):
    from orders.entrypoints import notifications

    sent: list[str] = []
    original = notifications.send_confirmation

    def counting(message: dict[str, Any]) -> dict[str, Any]:
        sent.append(message["order_id"])
        return original(message=message)

    monkeypatch.setattr(notifications, "send_confirmation", counting)
    notifications._persistence = None
    confirmed = event(EventType.PAYMENT_CONFIRMED, "o-1", 3)
    batch = sqs_event(
        confirmed,
        confirmed,  # a duplicate delivery
        event(EventType.PAYMENT_CONFIRMED, "o-1", 3),  # a republished outcome: new event_id
        event(EventType.PAYMENT_CONFIRMED, "o-2", 3),
        event(EventType.ORDER_PLACED, "o-3", 1),  # not ours: the filter would not send it
        "not json",  # poison: logged and dropped, not retried forever
    )
    result = notifications.handler(batch, lambda_context)
    assert result == {"batchItemFailures": []}
    assert sorted(sent) == ["o-1", "o-2"]
    # AND a redelivery of the whole batch later sends nothing more
    notifications.handler(batch, lambda_context)
    assert sorted(sent) == ["o-1", "o-2"]
