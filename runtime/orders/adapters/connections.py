"""Who tracks which order: WebSocket connections in DynamoDB, and pushing frames to them.

Table layout (constructs_lib/order_tracking.py): key ``connection_id`` + ``target`` ("connection" for
the connection itself, ``order#<id>`` for each order it tracks); tracking rows also carry ``order_id``,
which the sparse index ``by_order`` is keyed on; ``expires_at`` is the TTL (a connection lives 2 h).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

BY_ORDER_INDEX = "by_order"
_CONNECTION = "connection"


class DynamoConnectionStore:
    def __init__(self, table_name: str, client_factory: Callable[[], Any]) -> None:
        self._table = table_name
        self._client_factory = client_factory

    def connect(self, connection_id: str, expires_at: int) -> None:
        self._client_factory().put_item(
            TableName=self._table,
            Item={
                "connection_id": {"S": connection_id},
                "target": {"S": _CONNECTION},
                "expires_at": {"N": str(expires_at)},
            },
        )

    def track(self, connection_id: str, order_id: str, expires_at: int) -> None:
        self._client_factory().put_item(
            TableName=self._table,
            Item={
                "connection_id": {"S": connection_id},
                "target": {"S": f"order#{order_id}"},
                "order_id": {"S": order_id},
                "expires_at": {"N": str(expires_at)},
            },
        )

    def trackers(self, order_id: str) -> list[str]:
        client = self._client_factory()
        found: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": BY_ORDER_INDEX,
            "KeyConditionExpression": "order_id = :o",
            "ExpressionAttributeValues": {":o": {"S": order_id}},
        }
        while True:
            resp = client.query(**kwargs)
            found += [item["connection_id"]["S"] for item in resp.get("Items", [])]
            if "LastEvaluatedKey" not in resp:
                return sorted(set(found))
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def disconnect(self, connection_id: str) -> None:
        client = self._client_factory()
        resp = client.query(
            TableName=self._table,
            KeyConditionExpression="connection_id = :c",
            ExpressionAttributeValues={":c": {"S": connection_id}},
            ProjectionExpression="connection_id, #t",
            ExpressionAttributeNames={"#t": "target"},
        )
        for item in resp.get("Items", []):
            client.delete_item(
                TableName=self._table, Key={"connection_id": item["connection_id"], "target": item["target"]}
            )


class InMemoryConnectionStore:
    def __init__(self) -> None:
        self.connections: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def connect(self, connection_id: str, expires_at: int) -> None:
        with self._lock:
            self.connections.setdefault(connection_id, set())

    def track(self, connection_id: str, order_id: str, expires_at: int) -> None:
        with self._lock:
            self.connections.setdefault(connection_id, set()).add(order_id)

    def trackers(self, order_id: str) -> list[str]:
        with self._lock:
            return sorted(c for c, orders in self.connections.items() if order_id in orders)

    def disconnect(self, connection_id: str) -> None:
        with self._lock:
            self.connections.pop(connection_id, None)


class ApiGatewayPusher:
    """``post_to_connection`` through the WebSocket API's management endpoint (its stage's callback URL)."""

    def __init__(self, client_factory: Callable[[], Any]) -> None:
        self._client_factory = client_factory

    def post(self, connection_id: str, frame: Mapping[str, Any]) -> bool:
        client = self._client_factory()
        try:
            client.post_to_connection(ConnectionId=connection_id, Data=json.dumps(frame, separators=(",", ":")))
        except client.exceptions.GoneException:
            return False
        return True
