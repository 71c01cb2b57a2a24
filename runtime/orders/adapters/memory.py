"""In-memory adapters behind the same ports: unit tests and the worker bench."""

from __future__ import annotations

import threading
from typing import Any

from orders.adapters.dynamodb import DuplicateOrderError
from orders.domain.errors import PublishError
from orders.domain.events import OrderEvent
from orders.domain.models import Order, OrderStatus


class InMemoryOrderRepository:
    def __init__(self) -> None:
        self._orders: dict[str, Order] = {}
        self._lock = threading.Lock()

    def create(self, order: Order) -> None:
        with self._lock:
            if order.order_id in self._orders:
                raise DuplicateOrderError(order.order_id)
            self._orders[order.order_id] = order

    def get(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

    def transition(
        self, order_id: str, *, expected: OrderStatus, target: OrderStatus, at: str, attrs: dict[str, Any]
    ) -> Order | None:
        from dataclasses import replace

        with self._lock:
            order = self._orders.get(order_id)
            if order is None or order.status is not expected:
                return None
            known = {k: v for k, v in attrs.items() if k in ("payment_id", "failure_reason")}
            updated = replace(order, status=target, updated_at=at, **known)
            self._orders[order_id] = updated
            return updated

    def discard(self, order_id: str, *, expected: OrderStatus) -> None:
        with self._lock:
            order = self._orders.get(order_id)
            if order is not None and order.status is expected:
                del self._orders[order_id]

    def all(self) -> list[Order]:
        return list(self._orders.values())


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
