"""The real ECS worker in memory: QueueWorker, record handler, domain service and Powertools idempotency
with in-memory adapters behind the same ports, so the worker (not an emulator) is what is measured.
``make compare``'s worker table and ``benchmarks.worker_efficiency`` both run it."""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from typing import Any


def _in_memory_run(orders: int, concurrency: int, slots: int, latency_ms: int) -> dict[str, Any]:
    """One worker process draining ``orders`` from an in-memory queue."""
    from orders.adapters.memory import (
        InMemoryCatalog,
        InMemoryOrderRepository,
        InMemoryPublisher,
        InMemoryQueue,
        in_memory_persistence,
    )
    from orders.adapters.payment import FixedBudget, IdempotentPayments, SimulatedPaymentProcessor
    from orders.domain.models import OrderStatus, parse_order_request
    from orders.domain.service import OrderService
    from orders.entrypoints.records import process_message
    from orders.entrypoints.worker_ecs import QueueWorker
    from sandbox.emulator.local_aws import test_catalog_rows

    processor = SimulatedPaymentProcessor(slots=slots, latency_ms=latency_ms)
    payments = IdempotentPayments(processor, in_memory_persistence(), ttl_s=3600)
    payments.register_lambda_context(FixedBudget(60_000))
    catalog = InMemoryCatalog(test_catalog_rows())
    repo, publisher, queue = InMemoryOrderRepository(catalog), InMemoryPublisher(), InMemoryQueue()
    service = OrderService(repository=repo, publisher=publisher, payments=payments, catalog=catalog)
    request = service.price(parse_order_request({"customer_id": "bench", "items": [{"sku": "SKU-1", "qty": 1}]}))
    for _ in range(orders):
        service.accept(request)
    for event in publisher.events:
        queue.send(event.to_message())
    worker = QueueWorker(
        sqs=queue,
        queue_url="memory",
        handle=lambda body: process_message(service, body),
        concurrency=concurrency,
        visibility_timeout_s=60,
        wait_time_s=1,
    )
    started = time.perf_counter()
    worker.start()
    while worker.stats.succeeded < orders:
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    worker.stop(timeout_s=5)
    paid = sum(1 for o in repo.all() if o.status is OrderStatus.PAID)
    return {
        "orders": orders,
        "paid": paid,
        "charges": processor.charges,
        "peak_slots": processor.peak_in_use,
        "elapsed_s": elapsed,
        "rate": orders / elapsed,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _child(args: tuple[int, int, int, int], out: Any) -> None:
    out.put(_in_memory_run(*args))


def in_memory(processes: int, orders: int, concurrency: int, slots: int, latency_ms: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    results: Any = ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=((orders, concurrency, slots, latency_ms), results)) for _ in range(processes)
    ]
    started = time.perf_counter()
    for p in procs:
        p.start()
    runs = [results.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
    wall = time.perf_counter() - started
    limit = processes * min(concurrency, slots) / (latency_ms / 1000)
    rate = sum(r["rate"] for r in runs)
    assert all(r["paid"] == orders and r["charges"] == orders for r in runs), runs
    assert all(r["peak_slots"] <= slots for r in runs), runs
    return {
        "processes": processes,
        "concurrency": concurrency,
        "orders": orders * processes,
        "rate": rate,
        "limit": limit,
        "ratio": rate / limit,
        "rss_mb": max(r["rss_mb"] for r in runs),
        "wall_s": wall,
    }
