"""Event builders shared by the test levels; the shapes live as JSON files in tests/events."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).parent / "events"


def load_event(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((EVENTS / name).read_text()))


def http_event(method: str, path: str, body: Any = None, *, raw_body: str | None = None) -> dict[str, Any]:
    event = load_event("http_api_v2.json")
    route = "/orders/{order_id}" if path.startswith("/orders/") and path != "/orders/sync" else path
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {route}"
    event["rawPath"] = path
    event["requestContext"]["http"].update(method=method, path=path)
    event["body"] = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    return event


def sqs_event(*bodies: str) -> dict[str, Any]:
    records = []
    for n, body in enumerate(bodies):
        record = load_event("sqs_record.json")
        record.update(messageId=f"msg-{n}", receiptHandle=f"rh-{n}", body=body)
        records.append(record)
    return {"Records": records}


def sns_event(message: str) -> dict[str, Any]:
    record = load_event("sns_record.json")
    record["Sns"]["Message"] = message
    return {"Records": [record]}


class FakeLambdaContext:
    function_name = "orders-worker"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:orders-worker"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def sample_catalog(shards: int = 1) -> Any:
    """The products tests order (tests/events/catalog.json) in an in-memory catalog with stock shards."""
    from orders.adapters.memory import InMemoryCatalog
    from orders.domain.catalog import parse_catalog

    return InMemoryCatalog(parse_catalog((EVENTS / "catalog.json").read_bytes(), shards=shards))


def priced(svc: Any, data: dict[str, Any]) -> Any:
    """A payload as the API prices it: validated, then priced from the service's catalog."""
    from orders.domain.models import parse_order_request

    return svc.price(parse_order_request(data))


def one_key_table(ddb: Any, name: str, key: str) -> str:
    """An on-demand table keyed by one string attribute (what the fidelity tests write to)."""
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name
