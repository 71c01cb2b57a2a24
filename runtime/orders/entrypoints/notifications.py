"""An example consumer behind its own queue: the payment-confirmed e-mail, sent once per order.

It logs the e-mail it would send. Delivery is at-least-once (docs/events.md), so the send is made
idempotent on (order, event type) with Powertools' idempotency utility: a duplicate delivery, or the
worker re-publishing an outcome, never sends a second e-mail.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from orders.adapters import aws
from orders.domain.errors import MalformedEventError
from orders.domain.events import EventType as OrderEventType
from orders.domain.events import OrderEvent
from orders.entrypoints.observability import NAMESPACE

SERVICE = "orders-notifications"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
processor = BatchProcessor(event_type=EventType.SQS)
config = IdempotencyConfig(event_key_jmespath="[order_id, event_type]", expires_after_seconds=7 * 24 * 3600)
_persistence: DynamoDBPersistenceLayer | None = None


def persistence() -> DynamoDBPersistenceLayer:
    global _persistence
    if _persistence is None:
        _persistence = DynamoDBPersistenceLayer(
            table_name=os.environ["IDEMPOTENCY_TABLE_NAME"], boto3_client=aws.client("dynamodb")
        )
    return _persistence


def send_confirmation(message: dict[str, Any]) -> dict[str, Any]:
    """The side effect, at most once per (order, event type) while its record lives."""
    logger.info(
        "payment_confirmed e-mail",
        extra={"to_customer": message["customer_id"], "order_id": message["order_id"], "total": message["total"]},
    )
    metrics.add_metric(name="ConfirmationEmails", unit=MetricUnit.Count, value=1)
    return {"sent": message["order_id"]}


def _record(record: SQSRecord) -> None:
    try:
        event = OrderEvent.from_message(record.body)
    except MalformedEventError:
        logger.warning("not an order event; dropped", extra={"message_id": record.message_id})
        return
    if event.event_type is not OrderEventType.PAYMENT_CONFIRMED:
        return  # the filter policy sends only payment_confirmed; anything else is not ours
    idempotent_function(data_keyword_argument="message", config=config, persistence_store=persistence())(
        send_confirmation
    )(
        message={
            "order_id": event.order_id,
            "event_type": event.event_type.value,
            "customer_id": str(event.order.get("customer_id", "")),
            "total": str(event.order.get("total", "")),
        }
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    config.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=_record, processor=processor, context=context)
