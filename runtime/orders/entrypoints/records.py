"""The one record handler both worker variants run (Lambda batch/SNS and ECS consumers)."""

from __future__ import annotations

from orders.domain.events import EventType, OrderEvent
from orders.domain.service import OrderService, Outcome


def process_message(service: OrderService, body: str) -> Outcome | None:
    """Handle one message body (raw event or SNS envelope).

    Returns None for event types this worker does not act on (the queue's
    filter policy normally keeps them out). Raises MalformedEventError for
    unusable bodies and TransientPaymentError when a retry may succeed.
    """
    event = OrderEvent.from_message(body)
    if event.event_type is not EventType.ORDER_PLACED:
        return None
    return service.process_placed(event)
