"""Who tracks which order: WebSocket connections in DynamoDB, and pushing frames to them.

Table layout (constructs_lib/order_tracking.py): key ``connection_id`` + ``target``. A connection has
its own row (``target = "connection"``); tracking an order writes two rows in one transaction: the
connection's (``order#<id>``, what a disconnect finds) and the order's (partition ``order#<id>``, target
``connection#<cid>``), which the pusher reads with a strongly consistent query. An index would be
eventually consistent: a push right after a ``track`` could miss the new registration, and if that push
is the terminal event the client has no gap to notice. ``expires_at`` is the TTL (2 h). A connection's
row keeps the customer $connect authenticated. Connect tickets (apiAuth=jwt) are rows of their own
(``ticket#<sha256>``, target ``ticket``): issued by the API, deleted by the one $connect that redeems them.
DynamoDB's TTL deletes late (up to days), so a redeem checks ``expires_at`` itself.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

_CONNECTION = "connection"
_ORDER = "order#"
_BY = "connection#"
_TICKET = "ticket#"


class DynamoConnectionStore:
    def __init__(self, table_name: str, client_factory: Callable[[], Any]) -> None:
        self._table = table_name
        self._client_factory = client_factory

    def connect(self, connection_id: str, expires_at: int, customer: str | None = None) -> None:
        item = {
            "connection_id": {"S": connection_id},
            "target": {"S": _CONNECTION},
            "expires_at": {"N": str(expires_at)},
        }
        if customer:
            item["customer"] = {"S": customer}
        self._client_factory().put_item(TableName=self._table, Item=item)

    def customer(self, connection_id: str) -> str | None:
        resp = self._client_factory().get_item(
            TableName=self._table,
            Key={"connection_id": {"S": connection_id}, "target": {"S": _CONNECTION}},
            ConsistentRead=True,  # the first track follows $connect at once
        )
        return resp.get("Item", {}).get("customer", {}).get("S")

    def issue(self, digest: str, customer: str, expires_at: int) -> None:
        self._client_factory().put_item(
            TableName=self._table,
            Item={
                "connection_id": {"S": f"{_TICKET}{digest}"},
                "target": {"S": "ticket"},
                "customer": {"S": customer},
                "expires_at": {"N": str(expires_at)},
            },
            ConditionExpression="attribute_not_exists(connection_id)",  # a digest collision never rebinds one
        )

    def redeem(self, digest: str, now: int) -> str | None:
        client = self._client_factory()
        try:
            resp = client.delete_item(
                TableName=self._table,
                Key={"connection_id": {"S": f"{_TICKET}{digest}"}, "target": {"S": "ticket"}},
                ConditionExpression="attribute_exists(connection_id) AND expires_at > :now",
                ExpressionAttributeValues={":now": {"N": str(now)}},
                ReturnValues="ALL_OLD",
            )
        except client.exceptions.ConditionalCheckFailedException:
            return None  # unknown, already used, or expired (TTL has not removed it yet)
        return str(resp["Attributes"]["customer"]["S"])

    def track(self, connection_id: str, order_id: str, expires_at: int) -> None:
        ttl = {"expires_at": {"N": str(expires_at)}}
        rows = (
            {"connection_id": {"S": connection_id}, "target": {"S": f"{_ORDER}{order_id}"}, **ttl},
            {"connection_id": {"S": f"{_ORDER}{order_id}"}, "target": {"S": f"{_BY}{connection_id}"}, **ttl},
        )
        self._client_factory().transact_write_items(
            TransactItems=[{"Put": {"TableName": self._table, "Item": row}} for row in rows]
        )

    def trackers(self, order_id: str) -> list[str]:
        """Strongly consistent: a registration written before this read is seen (see the module doc)."""
        client = self._client_factory()
        found: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "connection_id = :o AND begins_with(#t, :by)",
            "ExpressionAttributeNames": {"#t": "target"},
            "ExpressionAttributeValues": {":o": {"S": f"{_ORDER}{order_id}"}, ":by": {"S": _BY}},
            "ConsistentRead": True,
        }
        while True:
            resp = client.query(**kwargs)
            found += [item["target"]["S"].removeprefix(_BY) for item in resp.get("Items", [])]
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
            ConsistentRead=True,  # a disconnect right after a track must find the rows it wrote
        )
        for item in resp.get("Items", []):
            client.delete_item(
                TableName=self._table, Key={"connection_id": item["connection_id"], "target": item["target"]}
            )
            target = item["target"]["S"]
            if target.startswith(_ORDER):  # the order's row of this registration
                client.delete_item(
                    TableName=self._table,
                    Key={"connection_id": {"S": target}, "target": {"S": f"{_BY}{connection_id}"}},
                )


class InMemoryConnectionStore:
    def __init__(self) -> None:
        self.connections: dict[str, set[str]] = {}
        self.customers: dict[str, str] = {}
        self.tickets: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()

    def connect(self, connection_id: str, expires_at: int, customer: str | None = None) -> None:
        with self._lock:
            self.connections.setdefault(connection_id, set())
            if customer:
                self.customers[connection_id] = customer

    def customer(self, connection_id: str) -> str | None:
        with self._lock:
            return self.customers.get(connection_id)

    def issue(self, digest: str, customer: str, expires_at: int) -> None:
        with self._lock:
            self.tickets.setdefault(digest, (customer, expires_at))

    def redeem(self, digest: str, now: int) -> str | None:
        with self._lock:
            found = self.tickets.pop(digest, None)
        return found[0] if found is not None and found[1] > now else None

    def track(self, connection_id: str, order_id: str, expires_at: int) -> None:
        with self._lock:
            self.connections.setdefault(connection_id, set()).add(order_id)

    def trackers(self, order_id: str) -> list[str]:
        with self._lock:
            return sorted(c for c, orders in self.connections.items() if order_id in orders)

    def disconnect(self, connection_id: str) -> None:
        with self._lock:
            self.connections.pop(connection_id, None)
            self.customers.pop(connection_id, None)


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
