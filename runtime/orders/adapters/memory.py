"""In-memory adapters behind the same ports: unit tests and the worker bench."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

from orders.adapters.dynamodb import DuplicateOrderError
from orders.domain.catalog import CatalogRow, Product, Reservation, shard_stock
from orders.domain.errors import PublishError, StockShortError
from orders.domain.events import OrderEvent
from orders.domain.models import Order, OrderStatus, log_entry


class InMemoryCatalog:
    """Products and stock shards with the counters of the DynamoDB layout (adapters/catalog.py)."""

    def __init__(self, rows: Iterable[CatalogRow] = ()) -> None:
        self._products: dict[str, Product] = {}
        self.shards: dict[tuple[str, int], dict[str, int]] = {}
        self.lock = threading.Lock()
        for row in rows:
            self._products[row.product.sku] = row.product
            for n, stock in enumerate(shard_stock(row.stock, row.product.shards)):
                self.shards[(row.product.sku, n)] = {"initial": stock, "sold": 0, "released": 0, "left": stock}

    def products(self, skus: Iterable[str]) -> dict[str, Product]:
        return {s: self._products[s] for s in skus if s in self._products}

    def listing(self) -> list[dict[str, Any]]:
        return [
            {**p.to_dict(), "left": sum(c["left"] for (s, _), c in self.shards.items() if s == sku)}
            for sku, p in sorted(self._products.items())
        ]

    def reserve(self, held: Sequence[Reservation]) -> None:
        """Take every reservation or none (the caller holds ``lock``)."""
        for r in held:
            if self.shards.get((r.sku, r.shard), {"left": -1})["left"] < r.qty:
                raise StockShortError(r.sku, r.shard)
        for r in held:
            shard = self.shards[(r.sku, r.shard)]
            shard["left"] -= r.qty
            shard["sold"] += r.qty

    def release(self, held: Sequence[Reservation]) -> None:
        for r in held:
            shard = self.shards.setdefault((r.sku, r.shard), {"initial": 0, "sold": 0, "released": 0, "left": 0})
            shard["left"] += r.qty
            shard["released"] += r.qty


class InMemoryOrderRepository:
    def __init__(self, catalog: InMemoryCatalog | None = None) -> None:
        self._orders: dict[str, Order] = {}
        self._lock = threading.Lock()
        self.catalog = catalog

    def create(self, order: Order) -> None:
        with self._lock:
            if order.order_id in self._orders:
                raise DuplicateOrderError(order.order_id)
            if order.reservations:
                if self.catalog is None:
                    raise RuntimeError("an order with reservations needs a catalog")
                with self.catalog.lock:
                    self.catalog.reserve(order.reservations)
            self._orders[order.order_id] = order

    def get(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

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
        from dataclasses import replace

        with self._lock:
            order = self._orders.get(order_id)
            if order is None or order.status is not expected:
                return None
            if release and self.catalog is not None:
                with self.catalog.lock:
                    self.catalog.release(release)
            known = {k: v for k, v in attrs.items() if k in ("payment_id", "failure_reason", "payment_key")}
            entry = log_entry(order.seq + 1, target, at, attrs)
            updated = replace(order, status=target, updated_at=at, log=(*order.log, entry), **known)
            self._orders[order_id] = updated
            return updated

    def all(self) -> list[Order]:
        return list(self._orders.values())

    def stuck(self, status: OrderStatus, updated_before: str, limit: int) -> list[Order]:
        found = [o for o in self._orders.values() if o.status is status and o.updated_at < updated_before]
        return sorted(found, key=lambda o: o.updated_at)[:limit]


class InMemoryPublisher:
    def __init__(self, *, fail: bool = False) -> None:
        self.events: list[OrderEvent] = []
        self.fail = fail
        self._lock = threading.Lock()

    def publish(self, event: OrderEvent) -> None:
        if self.fail:
            raise PublishError("publisher is down")
        with self._lock:
            self.events.append(event)


def in_memory_persistence() -> Any:
    """A Powertools idempotency persistence layer kept in a dict (same semantics as DynamoDB's)."""
    import datetime as dt

    from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyItemAlreadyExistsError,
        IdempotencyItemNotFoundError,
    )
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

    class _Layer(BasePersistenceLayer):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.records: dict[str, DataRecord] = {}
            self._lock = threading.Lock()

        def _get_record(self, idempotency_key: str) -> DataRecord:
            record = self.records.get(idempotency_key)
            if record is None:
                raise IdempotencyItemNotFoundError
            return record

        def _put_record(self, data_record: DataRecord) -> None:
            now = int(dt.datetime.now().timestamp())
            with self._lock:
                old = self.records.get(data_record.idempotency_key)
                if old is not None and not old.is_expired:
                    in_progress_expired = (
                        old.status == "INPROGRESS"
                        and old.in_progress_expiry_timestamp is not None
                        and old.in_progress_expiry_timestamp < now * 1000
                    )
                    if not in_progress_expired:
                        raise IdempotencyItemAlreadyExistsError(old_data_record=old)
                self.records[data_record.idempotency_key] = data_record

        def _update_record(self, data_record: DataRecord) -> None:
            with self._lock:
                self.records[data_record.idempotency_key] = data_record

        def _delete_record(self, data_record: DataRecord) -> None:
            with self._lock:
                self.records.pop(data_record.idempotency_key, None)

    return _Layer()


class InMemoryQueue:
    """The slice of the SQS client API the ECS worker uses, in memory (benches and unit tests).

    Semantics kept: visibility timeout per receive, receipt handles that go stale
    on redelivery, change visibility, delete, approximate receive counts.
    """

    def __init__(self, clock: Any = None) -> None:
        import collections
        import time

        self._clock = clock or time.monotonic
        self._lock = threading.Condition()
        self._ready: collections.deque[str] = collections.deque()
        self._invisible: dict[str, float] = {}  # message id -> visible again at
        self._bodies: dict[str, str] = {}
        self._receives: dict[str, int] = {}
        self._receipts: dict[str, str] = {}  # receipt -> message id
        self._seq = 0

    def send(self, body: str) -> None:
        with self._lock:
            self._seq += 1
            mid = f"m{self._seq}"
            self._bodies[mid] = body
            self._receives[mid] = 0
            self._ready.append(mid)
            self._lock.notify()

    def _expire(self, now: float) -> None:
        for mid, at in list(self._invisible.items()):
            if at <= now:
                del self._invisible[mid]
                self._ready.append(mid)

    def receive_message(
        self,
        *,
        QueueUrl: str,
        MaxNumberOfMessages: int = 1,
        WaitTimeSeconds: int = 0,
        VisibilityTimeout: int = 30,
        **_: Any,
    ) -> dict[str, Any]:
        deadline = self._clock() + WaitTimeSeconds
        with self._lock:
            while True:
                now = self._clock()
                self._expire(now)
                if self._ready or now >= deadline:
                    break
                self._lock.wait(min(0.05, deadline - now))
            out: list[dict[str, Any]] = []
            while self._ready and len(out) < MaxNumberOfMessages:
                mid = self._ready.popleft()
                self._receives[mid] += 1
                self._seq += 1
                receipt = f"{mid}:{self._seq}"
                self._receipts = {r: m for r, m in self._receipts.items() if m != mid}
                self._receipts[receipt] = mid
                self._invisible[mid] = now + VisibilityTimeout
                out.append(
                    {
                        "MessageId": mid,
                        "ReceiptHandle": receipt,
                        "Body": self._bodies[mid],
                        "Attributes": {"ApproximateReceiveCount": str(self._receives[mid])},
                    }
                )
            return {"Messages": out} if out else {}

    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> None:
        with self._lock:
            mid = self._receipts.pop(ReceiptHandle, None)
            if mid is not None:
                self._invisible.pop(mid, None)
                self._bodies.pop(mid, None)

    def delete_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        for entry in Entries:
            self.delete_message(QueueUrl=QueueUrl, ReceiptHandle=entry["ReceiptHandle"])
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}

    def change_message_visibility(self, *, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int) -> None:
        with self._lock:
            mid = self._receipts.get(ReceiptHandle)
            if mid is not None and mid in self._invisible:
                self._invisible[mid] = self._clock() + VisibilityTimeout
                self._lock.notify_all()

    def change_message_visibility_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        for entry in Entries:
            self.change_message_visibility(
                QueueUrl=QueueUrl, ReceiptHandle=entry["ReceiptHandle"], VisibilityTimeout=entry["VisibilityTimeout"]
            )
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}

    def depth(self) -> tuple[int, int]:
        with self._lock:
            self._expire(self._clock())
            return len(self._ready), len(self._invisible)
