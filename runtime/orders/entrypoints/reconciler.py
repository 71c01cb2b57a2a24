"""Scheduled reconciler: orders left non-terminal longer than ``RECONCILE_AFTER_S`` are resolved safely.

Run every minute by EventBridge Scheduler (both computes); what it does is ``OrderService.reconcile``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from orders.bootstrap import container

logger = Logger(service="orders-reconciler")
metrics = Metrics(namespace="FlashSaleOrders", service="orders-reconciler")


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    c = container()
    before = datetime.now(UTC) - timedelta(seconds=c.settings.reconcile_after_s)
    counts = c.service.reconcile(updated_before=before.isoformat(timespec="milliseconds"))
    metrics.add_metric(name="StuckOrdersFound", unit=MetricUnit.Count, value=counts["found"])
    metrics.add_metric(
        name="StuckOrdersResolved", unit=MetricUnit.Count, value=counts["adopted"] + counts["republished"]
    )
    if counts["found"]:
        logger.warning("stuck orders found", extra=counts)
    return counts
