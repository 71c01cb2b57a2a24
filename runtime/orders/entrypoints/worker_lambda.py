"""Lambda worker: SQS event source (partial batch failures) or direct SNS subscription.

SQS: a batch's records are paid concurrently, up to the payment client's
slots at once (Powertools' AsyncBatchProcessor, each record on a thread of a
pool sized to the slots), so an environment keeps min(batch size, slots)
payments in flight and bills one payment latency per batch rather than per
record. Failures are reported as batch item failures so only they are
retried and, after maxReceiveCount, land in the DLQ. SNS: a failure raises,
so Lambda's async retries and the on-failure destination take over.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from orders.bootstrap import container
from orders.domain.service import Outcome
from orders.entrypoints.observability import LAMBDA_WORKER_SERVICE, NAMESPACE, RECORDS_FAILED
from orders.entrypoints.records import process_message

logger = Logger(service=LAMBDA_WORKER_SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=LAMBDA_WORKER_SERVICE)
processor = AsyncBatchProcessor(event_type=EventType.SQS)
_pool: ThreadPoolExecutor | None = None


def _payers() -> ThreadPoolExecutor:
    """One thread per payment slot, made on first use (cold start stays import-only)."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=container().settings.payment_slots, thread_name_prefix="pay")
    return _pool


_METRIC = {
    Outcome.PAID: "OrdersPaid",
    Outcome.PAYMENT_FAILED: "OrdersPaymentFailed",
    Outcome.ALREADY_TERMINAL: "DuplicateDeliveries",
    Outcome.REJECTED: "RejectedOrderEvents",
}


def _handle(body: str) -> Outcome | None:
    outcome = process_message(container().service, body)
    if outcome is not None:
        metrics.add_metric(name=_METRIC[outcome], unit=MetricUnit.Count, value=1)
    return outcome


async def record_handler(record: SQSRecord) -> str:
    outcome = await asyncio.get_running_loop().run_in_executor(_payers(), _handle, record.body)
    return outcome.value if outcome else "ignored"


def _failed(count: int) -> None:
    """Records not finished: a partial batch failure is no function error, so it gets a metric of its own."""
    metrics.add_metric(name=RECORDS_FAILED, unit=MetricUnit.Count, value=count)


def _handle_sns(records: list[dict[str, Any]]) -> dict[str, Any]:
    for record in records:
        try:
            _handle(record["Sns"]["Message"])
        except Exception:
            _failed(1)
            raise
    return {"processed": len(records)}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse | dict[str, Any]:
    container().payments.register_lambda_context(context)
    records = event.get("Records") or []
    if records and records[0].get("EventSource") == "aws:sns":
        return _handle_sns(records)
    try:
        response = async_process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    except BatchProcessingError:
        _failed(len(records))  # every record failed: a function error, and the whole batch is retried
        raise
    _failed(len(response.get("batchItemFailures", [])))
    return response
