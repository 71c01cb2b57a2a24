"""Order tracking over the WebSocket API: the route handler and the consumer that pushes events.

``handler``: API Gateway WebSocket events ($connect, $disconnect, ``track``), and with apiAuth=jwt the
$connect REQUEST authorizer (the same function: it redeems the connect ticket). ``push_handler``: SQS
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

from orders.bootstrap import settings, tracking
from orders.domain.errors import MalformedEventError
from orders.domain.events import OrderEvent
from orders.domain.models import customer_of
from orders.entrypoints.observability import NAMESPACE

SERVICE = "orders-tracking"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
processor = BatchProcessor(event_type=EventType.SQS)


def _policy(effect: str, resource: str, customer: str | None) -> dict[str, Any]:
    statement = {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}
    out: dict[str, Any] = {
        "principalId": customer or "unknown",
        "policyDocument": {"Version": "2012-10-17", "Statement": [statement]},
    }
    if customer:
        out["context"] = {"customer": customer}  # what the $connect integration reads
    return out


def authorize(event: dict[str, Any]) -> dict[str, Any]:
    """The $connect REQUEST authorizer: Allow the customer a ticket stands for (taking it), else Deny (403)."""
    ticket = (event.get("queryStringParameters") or {}).get("ticket")
    customer = tracking().redeem(ticket)
    if customer is None:
        logger.info("connect refused: no valid ticket")
    return _policy("Allow" if customer else "Deny", str(event.get("methodArn", "")), customer)


def connecting_customer(ctx: dict[str, Any]) -> str | None:
    """Who $connect authenticated: the authorizer's customer (jwt), the SigV4 principal (iam), or None."""
    mode = settings().api_auth
    if mode == "jwt":
        return (ctx.get("authorizer") or {}).get("customer") or None
    if mode == "iam":
        return customer_of("iam", "", str((ctx.get("identity") or {}).get("userArn") or ""))
    return None


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("type") == "REQUEST" and "methodArn" in event:
        return authorize(event)
    ctx = event.get("requestContext") or {}
    route, connection_id = ctx.get("routeKey"), ctx.get("connectionId", "")
    service = tracking()
    if route == "$connect":
        return {"statusCode": 200 if service.connect(connection_id, connecting_customer(ctx)) else 403}
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
