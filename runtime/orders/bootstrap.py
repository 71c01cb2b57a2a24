"""Composition root: builds the service from the environment, once per process, on first use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orders.adapters import aws
from orders.adapters.catalog import DynamoCatalog
from orders.adapters.checkout_keys import CheckoutRequests
from orders.adapters.dynamodb import DynamoOrderRepository
from orders.adapters.ledger import open_ledger
from orders.adapters.payment import IdempotentPayments, SimulatedPaymentProcessor
from orders.adapters.sns import SnsEventPublisher
from orders.adapters.sqs import SqsDepthProbe
from orders.domain.service import OrderService
from orders.domain.tracking import TicketStore, TrackingService
from orders.settings import Settings, settings


@dataclass
class Container:
    settings: Settings
    service: OrderService
    processor: SimulatedPaymentProcessor
    payments: IdempotentPayments
    checkouts: CheckoutRequests
    tickets: TicketStore | None = None  # apiAuth=jwt: where the API issues tracking connect tickets


def build(cfg: Settings, *, persistence: Callable[[], Any] | None = None) -> Container:
    """Wire the real adapters (``persistence``: a factory of another idempotency store, e.g. in memory).

    Each idempotent operation gets its own store object: Powertools configures a store for the one
    operation it wraps (key and payload paths), so one store shared by two operations hashes one's
    requests with the other's paths.
    """
    dynamodb = lambda: aws.client("dynamodb")  # noqa: E731
    processor = SimulatedPaymentProcessor(
        slots=cfg.payment_slots,
        latency_ms=cfg.payment_latency_ms,
        failure_rate=cfg.payment_failure_rate,
        lost_response_share=cfg.payment_lost_response_share,
        slow_share=cfg.payment_slow_share,
        declined_tokens=cfg.declined_tokens,
        ledger=open_ledger(cfg.payment_ledger_path or None),
        outage_file=cfg.payment_outage_file or None,
    )
    if persistence is None:
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

        def persistence() -> Any:
            return DynamoDBPersistenceLayer(table_name=cfg.idempotency_table, boto3_client=dynamodb())

    payments = IdempotentPayments(processor, persistence(), ttl_s=cfg.idempotency_ttl_s)
    service = OrderService(
        repository=DynamoOrderRepository(cfg.orders_table, dynamodb, catalog_table=cfg.catalog_table),
        publisher=SnsEventPublisher(cfg.topic_arn, lambda: aws.client("sns")),
        payments=payments,
        catalog=DynamoCatalog(cfg.catalog_table, dynamodb, cache_s=cfg.catalog_cache_s) if cfg.catalog_table else None,
        depth_probe=SqsDepthProbe(cfg.queue_url, lambda: aws.client("sqs")) if cfg.queue_url else None,
        max_queue_depth=cfg.max_queue_depth,
    )
    checkouts = CheckoutRequests(persistence(), window_s=cfg.checkout_key_window_s)
    tickets = None
    if cfg.connections_table:
        from orders.adapters.connections import DynamoConnectionStore

        tickets = DynamoConnectionStore(cfg.connections_table, dynamodb)
    return Container(
        settings=cfg, service=service, processor=processor, payments=payments, checkouts=checkouts, tickets=tickets
    )


def build_tracking(cfg: Settings) -> TrackingService:
    """The tracking side: reads orders, keeps connections, pushes through the WebSocket API."""
    import time

    from orders.adapters.connections import ApiGatewayPusher, DynamoConnectionStore

    cfg.require("orders_table", "connections_table", "websocket_endpoint")
    dynamodb = lambda: aws.client("dynamodb")  # noqa: E731
    connections = DynamoConnectionStore(cfg.connections_table, dynamodb)
    return TrackingService(
        orders=DynamoOrderRepository(cfg.orders_table, dynamodb),
        connections=connections,
        tickets=connections,
        pusher=ApiGatewayPusher(lambda: aws.client("apigatewaymanagementapi", endpoint_url=cfg.websocket_endpoint)),
        now=time.time,
        owners_only=cfg.api_auth != "none",
    )


_lock = threading.Lock()
_container: Container | None = None
_tracking: TrackingService | None = None


def tracking() -> TrackingService:
    global _tracking
    if _tracking is None:
        with _lock:
            if _tracking is None:
                _tracking = build_tracking(settings())
    return _tracking


def container() -> Container:
    """The process-wide container, built lazily so import time stays minimal."""
    global _container
    if _container is None:
        with _lock:
            if _container is None:
                _container = build(settings())
    return _container


def reset() -> None:
    """Forget the container and cached settings/clients (tests change the environment)."""
    global _container, _tracking
    with _lock:
        _container = None
        _tracking = None
    settings.cache_clear()
    aws.reset()
