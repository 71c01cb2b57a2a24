"""Publishes order events to the topic with the ``event_type`` attribute subscribers filter on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orders.domain.errors import PublishError
from orders.domain.events import EVENT_TYPE_ATTRIBUTE, OrderEvent


class SnsEventPublisher:
    def __init__(self, topic_arn: str, client_factory: Callable[[], Any]) -> None:
        self._topic_arn = topic_arn
        self._client_factory = client_factory

    def publish(self, event: OrderEvent) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client_factory().publish(
                TopicArn=self._topic_arn,
                Message=event.to_message(),
                MessageAttributes={EVENT_TYPE_ATTRIBUTE: {"DataType": "String", "StringValue": event.event_type.value}},
            )
        except (BotoCoreError, ClientError) as exc:
            raise PublishError(f"{event.event_type.value} for {event.order_id}: {exc}") from exc
