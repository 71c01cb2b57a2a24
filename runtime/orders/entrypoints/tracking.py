"""Order tracking over the WebSocket API: the route handler and the consumer that pushes events.

``handler``: API Gateway WebSocket events ($connect, $disconnect, ``track``). ``push_handler``: SQS
batches from the tracking consumer's own queue behind the topic; each event goes to the connections
tracking its order, gone ones (410) are forgotten. The protocol is in ``orders.domain.tracking``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from orders.bootstrap import tracking
from orders.domain.errors import MalformedEventError
from orders.domain.events import OrderEvent
from orders.entrypoints.observability import NAMESPACE

SERVICE = "orders-tracking"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
processor = BatchProcessor(event_type=EventType.SQS)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ctx = event.get("requestContext") or {}
    route, connection_id = ctx.get("routeKey"), ctx.get("connectionId", "")
    service = tracking()
    if route == "$connect":
        service.connect(connection_id)
        return {"statusCode": 200}
    if route == "$disconnect":
        service.disconnect(connection_id)
        return {"statusCode": 200}
    # "track" and $default (a message naming no known action) both answer through the protocol's frames.
    return service.track(connection_id, event.get("body"))


def _push(record: SQSRecord) -> int:
    try:
        event = OrderEvent.from_message(record.body)
    except MalformedEventError:
        logger.warning("not an order event; dropped", extra={"message_id": record.message_id})
        return 0
    delivered = tracking().push(event)
    metrics.add_metric(name="TrackingPushes", unit=MetricUnit.Count, value=delivered)
    return delivered


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def push_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=_push, processor=processor, context=context)
