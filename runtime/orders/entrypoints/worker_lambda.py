"""Lambda worker: SQS event source (partial batch failures) or direct SNS subscription.

SQS: each record is processed on its own; failures are reported as batch
item failures so only they are retried and, after maxReceiveCount, land in
the DLQ. SNS: a failure raises, so Lambda's async retries and the on-failure
destination take over.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from orders.bootstrap import container
from orders.domain.service import Outcome
from orders.entrypoints.records import process_message

logger = Logger(service="orders-worker")
metrics = Metrics(namespace="FlashSaleOrders", service="orders-worker")
processor = BatchProcessor(event_type=EventType.SQS)

_METRIC = {
    Outcome.PAID: "OrdersPaid",
    Outcome.PAYMENT_FAILED: "OrdersPaymentFailed",
    Outcome.ALREADY_TERMINAL: "DuplicateDeliveries",
}


def _handle(body: str) -> Outcome | None:
    outcome = process_message(container().service, body)
    if outcome is not None:
        metrics.add_metric(name=_METRIC[outcome], unit=MetricUnit.Count, value=1)
    return outcome


def record_handler(record: SQSRecord) -> str:
    outcome = _handle(record.body)
    return outcome.value if outcome else "ignored"


def _handle_sns(records: list[dict[str, Any]]) -> dict[str, Any]:
    for record in records:
        _handle(record["Sns"]["Message"])
    return {"processed": len(records)}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse | dict[str, Any]:
    container().payments.register_lambda_context(context)
    records = event.get("Records") or []
    if records and records[0].get("EventSource") == "aws:sns":
        return _handle_sns(records)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
