"""The metrics the workers emit (CloudWatch embedded metric format, via Powertools Metrics).

The stacks alarm on exactly these names and dimensions (``constructs_lib.order_runtime``
mirrors them; an infra test checks both against what the code really prints).
"""

from __future__ import annotations

import threading
from typing import Any

NAMESPACE = "FlashSaleOrders"
LAMBDA_WORKER_SERVICE = "orders-worker"
ECS_WORKER_SERVICE = "orders-worker-ecs"
API_SERVICE = "orders-api"
RECORDS_FAILED = "RecordsFailed"  # records a worker could not finish (retried, then dead-lettered)


class EmfCounters:
    """Powertools Metrics for a long-running process: counts added from many threads, flushed on a schedule.

    Powertools flushes per invocation on Lambda; a worker that never returns flushes every interval instead.
    """

    def __init__(self, service: str) -> None:
        from aws_lambda_powertools import Metrics

        self._metrics = Metrics(namespace=NAMESPACE, service=service)
        self._lock = threading.Lock()
        self._pending = False

    def add(self, name: str, value: float = 1) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        with self._lock:
            self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
            self._pending = True

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self._metrics.flush_metrics()
                self._pending = False

    @property
    def provider(self) -> Any:
        return self._metrics
