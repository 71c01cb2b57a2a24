"""Lambda worker: what one execution environment pays per second, and the GB-s it bills per order.

The real ``orders.entrypoints.worker_lambda.handler`` (Powertools AsyncBatchProcessor,
idempotency, metrics) handles SQS batches one invocation after another, as one
environment does, with in-memory adapters behind the same ports so the handler,
not an emulator, is measured. Beside it, the same records paid one after another
(Powertools' synchronous BatchProcessor with the same record handler): the
behaviour before batches were paid concurrently.

Bar: the concurrent handler sustains >= 0.95 x min(batch, slots) / latency.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"  # no EMF lines between the figures
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "bench")


def _install(slots: int, latency_ms: int) -> Any:
    """Put an in-memory container where the handler looks for its composition root."""
    os.environ["PAYMENT_SLOTS"] = str(slots)
    from orders import bootstrap
    from orders.adapters.checkout_keys import CheckoutRequests
    from orders.adapters.memory import (
        InMemoryCatalog,
        InMemoryOrderRepository,
        InMemoryPublisher,
        in_memory_persistence,
    )
    from orders.adapters.payment import IdempotentPayments, SimulatedPaymentProcessor
    from orders.domain.service import OrderService
    from orders.entrypoints import worker_lambda
    from orders.settings import Settings
    from sandbox.emulator.local_aws import test_catalog_rows

    processor = SimulatedPaymentProcessor(slots=slots, latency_ms=latency_ms)
    payments = IdempotentPayments(processor, in_memory_persistence(), ttl_s=3600)
    catalog = InMemoryCatalog(test_catalog_rows())
    service = OrderService(
        repository=InMemoryOrderRepository(catalog), publisher=InMemoryPublisher(), payments=payments, catalog=catalog
    )
    bootstrap._container = bootstrap.Container(
        settings=Settings.from_env(),
        service=service,
        processor=processor,
        payments=payments,
        checkouts=CheckoutRequests(in_memory_persistence(), window_s=3600),
    )
    worker_lambda._pool = None
    return bootstrap._container


def _batches(service: Any, batches: int, batch_size: int) -> list[dict[str, Any]]:
    from orders.domain.models import parse_order_request

    request = service.price(parse_order_request({"customer_id": "bench", "items": [{"sku": "SKU-1", "qty": 1}]}))
    for _ in range(batches * batch_size):
        service.accept(request)
    events = service.publisher.events
    out = []
    for b in range(batches):
        records = [
            {
                "messageId": f"m-{b}-{n}",
                "receiptHandle": f"rh-{b}-{n}",
                "body": e.to_message(),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:orders",
                "awsRegion": "us-east-1",
            }
            for n, e in enumerate(events[b * batch_size : (b + 1) * batch_size])
        ]
        out.append({"Records": records})
    return out


def run(*, concurrent: bool, batches: int, batch_size: int, slots: int, latency_ms: int, memory_mb: int) -> dict:
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    from orders.entrypoints import worker_lambda

    container = _install(slots, latency_ms)
    events = _batches(container.service, batches, batch_size)
    from tests.helpers import FakeLambdaContext

    ctx = FakeLambdaContext()
    serial = BatchProcessor(event_type=EventType.SQS)

    def serial_record(record: Any) -> str:
        outcome = worker_lambda._handle(record.body)
        return outcome.value if outcome else "ignored"

    billed = 0.0
    started = time.perf_counter()
    for event in events:
        t0 = time.perf_counter()
        if concurrent:
            result = worker_lambda.handler(event, ctx)
        else:
            container.payments.register_lambda_context(ctx)
            result = process_partial_response(event=event, record_handler=serial_record, processor=serial, context=ctx)
        billed += time.perf_counter() - t0
        assert not result["batchItemFailures"], result
    elapsed = time.perf_counter() - started
    orders = batches * batch_size
    charges = container.processor.charges
    assert charges == orders, (charges, orders)
    rate = orders / elapsed
    return {
        "rate": rate,
        "limit": (min(batch_size, slots) if concurrent else 1) / (latency_ms / 1000),
        "gb_s_per_order": billed * memory_mb / 1024 / orders,
        "peak_slots": container.processor.peak_in_use,
        "orders": orders,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--slots", type=int, default=5)
    parser.add_argument("--latency-ms", type=int, default=300)
    parser.add_argument("--memory-mb", type=int, default=512)
    args = parser.parse_args(argv)
    shape = {
        "batches": args.batches,
        "batch_size": args.batch_size,
        "slots": args.slots,
        "latency_ms": args.latency_ms,
        "memory_mb": args.memory_mb,
    }
    serial = run(concurrent=False, **shape)
    concurrent = run(concurrent=True, **shape)
    ratio = concurrent["rate"] / (min(args.batch_size, args.slots) / (args.latency_ms / 1000))
    scale = 3000 / args.latency_ms  # GB-s at the seed's 3 s payment
    print(
        f"lambda batch (one environment, batch {args.batch_size}, S={args.slots}, L={args.latency_ms} ms, "
        f"{concurrent['orders']} orders each)"
    )
    print(
        f"  serial (BatchProcessor):          {serial['rate']:6.2f} orders/s of {serial['limit']:.2f} "
        f"({serial['rate'] / serial['limit']:.3f}), {serial['gb_s_per_order'] * scale:.3f} GB-s/order at L=3 s"
    )
    print(
        f"  concurrent (AsyncBatchProcessor): {concurrent['rate']:6.2f} orders/s of {concurrent['limit']:.2f} "
        f"({ratio:.3f}), {concurrent['gb_s_per_order'] * scale:.3f} GB-s/order at L=3 s, "
        f"peak {concurrent['peak_slots']} slots"
    )
    met = ratio >= 0.95
    print(f"  bar >= 0.95 x min(batch, slots) / latency: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
