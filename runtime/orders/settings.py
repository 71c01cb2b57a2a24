"""Runtime settings, read once from the environment contract the stacks set."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw.strip() else default
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"{name}={value} must be >= {minimum}")
    return value


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw.strip() else default
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value} must be between 0 and 1")
    return value


@dataclass(frozen=True)
class Settings:
    topic_arn: str
    queue_url: str
    orders_table: str
    idempotency_table: str
    payment_slots: int
    payment_latency_ms: int
    payment_failure_rate: float
    declined_tokens: frozenset[str]
    worker_concurrency: int
    max_queue_depth: int
    visibility_timeout_s: int
    idempotency_ttl_s: int
    payment_ledger_path: str  # simulator only: a SQLite ledger shared by processes (the local sandbox)
    connections_table: str = ""  # order tracking: who tracks which order
    websocket_endpoint: str = ""  # order tracking: the WebSocket API's management (callback) URL

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            topic_arn=os.environ.get("ORDER_EVENTS_TOPIC_ARN", ""),
            queue_url=os.environ.get("ORDERS_QUEUE_URL", ""),
            orders_table=os.environ.get("ORDERS_TABLE_NAME", ""),
            idempotency_table=os.environ.get("IDEMPOTENCY_TABLE_NAME", ""),
            payment_slots=_int("PAYMENT_SLOTS", 5, minimum=1),
            payment_latency_ms=_int("PAYMENT_LATENCY_MS", 3000),
            payment_failure_rate=_float("PAYMENT_FAILURE_RATE", 0.0),
            declined_tokens=frozenset(
                t.strip() for t in os.environ.get("PAYMENT_DECLINED_TOKENS", "tok_declined").split(",") if t.strip()
            ),
            worker_concurrency=_int("WORKER_CONCURRENCY", 10, minimum=1),
            max_queue_depth=_int("BACKPRESSURE_MAX_QUEUE_DEPTH", 0),
            visibility_timeout_s=_int("QUEUE_VISIBILITY_TIMEOUT_S", 60, minimum=1),
            idempotency_ttl_s=_int("IDEMPOTENCY_TTL_S", 86400, minimum=60),
            payment_ledger_path=os.environ.get("PAYMENT_LEDGER_PATH", ""),
            connections_table=os.environ.get("CONNECTIONS_TABLE_NAME", ""),
            websocket_endpoint=os.environ.get("WEBSOCKET_MANAGEMENT_ENDPOINT", ""),
        )

    def require(self, *names: str) -> None:
        """Fail early, naming the variable, when an entry point lacks what it needs."""
        env = {
            "topic_arn": "ORDER_EVENTS_TOPIC_ARN",
            "queue_url": "ORDERS_QUEUE_URL",
            "orders_table": "ORDERS_TABLE_NAME",
            "idempotency_table": "IDEMPOTENCY_TABLE_NAME",
            "connections_table": "CONNECTIONS_TABLE_NAME",
            "websocket_endpoint": "WEBSOCKET_MANAGEMENT_ENDPOINT",
        }
        missing = [env[n] for n in names if not getattr(self, n)]
        if missing:
            raise RuntimeError(f"missing environment: {', '.join(missing)}")


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()
