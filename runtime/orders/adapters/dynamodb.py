"""Orders read model in DynamoDB, with conditional writes for every transition."""

from __future__ import annotations

import random
import time
import zlib
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from orders.adapters.catalog import release_update, reserve_update
from orders.domain.catalog import Reservation
from orders.domain.errors import ContendedError, OrderError, StockShortError
from orders.domain.models import Order, OrderStatus, log_entry, order_from_dict


class DuplicateOrderError(OrderError):
    """An order with this id already exists."""


def _to_av(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, Decimal)):
        return {"N": str(value)}
    if isinstance(value, list):
        return {"L": [_to_av(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {k: _to_av(v) for k, v in value.items()}}
    if value is None:
        return {"NULL": True}
    raise TypeError(f"cannot store {type(value).__name__}")


def _from_av(av: dict[str, Any]) -> Any:
    ((kind, value),) = av.items()
    if kind == "S":
        return value
    if kind == "N":
        return Decimal(value)
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "L":
        return [_from_av(v) for v in value]
    if kind == "M":
        return {k: _from_av(v) for k, v in value.items()}
    raise TypeError(f"unsupported attribute type {kind}")


PENDING_INDEX = "pending-by-age"  # sparse: only non-terminal orders carry its key
PENDING_KEY = "pending_key"
PENDING_SHARDS = 8  # the index key's spread: a flash sale's writes over 16 partitions, not 2


def pending_key(order_id: str, status: OrderStatus) -> str | None:
    """The index key of a non-terminal order (``PAYING#3``); None once terminal, which drops it from the index."""
    if status not in (OrderStatus.PLACED, OrderStatus.PAYING):
        return None
    return f"{status.value}#{zlib.crc32(order_id.encode()) % PENDING_SHARDS}"


def _item(order: Order) -> dict[str, Any]:
    data = order.to_dict()
    if (key := pending_key(order.order_id, order.status)) is not None:
        data[PENDING_KEY] = key
    data.pop("seq")  # the log's length is the sequence: one source of truth
    data["payment_token"] = order.payment_token
    if order.reservations:
        data["reservations"] = [r.to_dict() for r in order.reservations]
    data["log"] = [e.stored() for e in order.log]
    return {k: _to_av(v) for k, v in data.items()}


def _order(item: dict[str, Any]) -> Order:
    return order_from_dict({k: _from_av(v) for k, v in item.items()})


CONFLICT_TRIES = 5  # a release meeting a concurrent reservation on its shard, retried inline


def _codes(exc: Any) -> list[str]:
    return [str(r.get("Code") or "None") for r in exc.response.get("CancellationReasons") or []]


class DynamoOrderRepository:
    """``catalog_table``: where stock shards live; an order holding reservations is written in one
    transaction with them (TransactWriteItems: the order's conditional put beside each shard's conditional
    decrement), so no interleaving of checkouts sells more than a shard holds."""

    def __init__(self, table_name: str, client_factory: Callable[[], Any], *, catalog_table: str = "") -> None:
        self._table = table_name
        self._client_factory = client_factory
        self._catalog = catalog_table

    @property
    def _client(self) -> Any:
        return self._client_factory()

    def create(self, order: Order) -> None:
        put = {
            "TableName": self._table,
            "Item": _item(order),
            "ConditionExpression": "attribute_not_exists(order_id)",
        }
        client = self._client
        try:
            if not order.reservations:
                client.put_item(**put)
                return
            if not self._catalog:
                raise RuntimeError("an order with reservations needs the catalog table (CATALOG_TABLE_NAME)")
            client.transact_write_items(
                # The SDK fills ClientRequestToken (an idempotency token in the API model) once per call and
                # resends it on its retries: a retried attempt that had landed changes nothing the second time.
                TransactItems=[{"Put": put}, *(reserve_update(self._catalog, r) for r in order.reservations)],
            )
        except client.exceptions.ConditionalCheckFailedException:
            self._same_write_or_duplicate(order)
        except client.exceptions.TransactionCanceledException as exc:
            codes = _codes(exc)
            if codes[:1] == ["ConditionalCheckFailed"]:
                self._same_write_or_duplicate(order)
                return
            for r, code in zip(order.reservations, codes[1:], strict=False):
                if code == "ConditionalCheckFailed":
                    raise StockShortError(r.sku, r.shard) from None
            if "TransactionConflict" in codes:
                raise ContendedError(f"order {order.order_id}: a concurrent write on its stock") from None
            raise
        except client.exceptions.TransactionInProgressException:
            raise ContendedError(f"order {order.order_id}: its write is still in progress") from None

    def _same_write_or_duplicate(self, order: Order) -> None:
        # The client's bounded timeouts retry a write whose first attempt may have landed: the order
        # already stored, as this one was written, is that attempt (its stock taken once), not a duplicate.
        stored = self.get(order.order_id)
        if stored is not None and (stored.created_at, stored.customer_id, stored.log[:1], stored.reservations) == (
            order.created_at,
            order.customer_id,
            order.log[:1],
            order.reservations,
        ):
            return
        raise DuplicateOrderError(order.order_id) from None

    def get(self, order_id: str) -> Order | None:
        resp = self._client.get_item(TableName=self._table, Key={"order_id": {"S": order_id}}, ConsistentRead=True)
        item = resp.get("Item")
        return _order(item) if item else None

    def transition(
        self,
        order_id: str,
        *,
        expected: OrderStatus,
        target: OrderStatus,
        at: str,
        attrs: dict[str, Any],
        release: Sequence[Reservation] = (),
    ) -> Order | None:
        # The log entry is appended by the same conditional write that moves the state: a redelivery that
        # finds the order moved on writes nothing, so the log has each transition once and no gaps, and
        # stock given back with it is given back once.
        entry = log_entry(0, target, at, attrs).stored()
        names = {"#s": "status", "#u": "updated_at", "#log": "log"}
        values = {
            ":expected": {"S": expected.value},
            ":target": {"S": target.value},
            ":at": {"S": at},
            ":entry": {"L": [_to_av(entry)]},
            ":empty": {"L": []},
        }
        sets = ["#s = :target", "#u = :at", "#log = list_append(if_not_exists(#log, :empty), :entry)"]
        for n, (key, value) in enumerate(sorted(attrs.items())):
            if value is None:
                continue
            names[f"#a{n}"] = key
            values[f":a{n}"] = _to_av(value)
            sets.append(f"#a{n} = :a{n}")
        pending = pending_key(order_id, target)
        names["#p"] = PENDING_KEY
        if pending is None:
            update = "SET " + ", ".join(sets) + " REMOVE #p"
        else:
            values[":p"] = {"S": pending}
            update = "SET " + ", ".join([*sets, "#p = :p"])
        request = {
            "TableName": self._table,
            "Key": {"order_id": {"S": order_id}},
            "UpdateExpression": update,
            "ConditionExpression": "#s = :expected",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if release:
            return self._transition_releasing(order_id, request, release, target)
        client = self._client
        try:
            resp = client.update_item(**request, ReturnValues="ALL_NEW")
        except client.exceptions.ConditionalCheckFailedException:
            return None
        return _order(resp["Attributes"])

    def _transition_releasing(
        self, order_id: str, request: dict[str, Any], release: Sequence[Reservation], target: OrderStatus
    ) -> Order | None:
        client = self._client
        items = [{"Update": request}, *(release_update(self._catalog, r) for r in release)]
        for attempt in range(1, CONFLICT_TRIES + 1):
            try:
                client.transact_write_items(TransactItems=items)
                return self.get(order_id)
            except client.exceptions.TransactionCanceledException as exc:
                codes = _codes(exc)
                if codes[:1] == ["ConditionalCheckFailed"]:
                    return None
                if "TransactionConflict" not in codes or attempt == CONFLICT_TRIES:
                    raise
            except client.exceptions.TransactionInProgressException:
                if attempt == CONFLICT_TRIES:
                    raise
            time.sleep(random.uniform(0, 0.02 * attempt))
        return None  # unreachable: the last attempt raises

    def stuck(self, status: OrderStatus, updated_before: str, limit: int) -> list[Order]:
        out: list[Order] = []
        for shard in range(PENDING_SHARDS):
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": PENDING_INDEX,
                "KeyConditionExpression": "#p = :p AND updated_at < :before",
                "ExpressionAttributeNames": {"#p": PENDING_KEY},
                "ExpressionAttributeValues": {":p": {"S": f"{status.value}#{shard}"}, ":before": {"S": updated_before}},
            }
            while len(out) < limit:
                resp = self._client.query(**kwargs, Limit=limit - len(out))
                out += [_order(item) for item in resp.get("Items", [])]
                if "LastEvaluatedKey" not in resp:
                    break
                kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return out[:limit]
