"""Lazily created, shared boto3 clients.

Clients are built on first use (not at import) so a cold start pays only for
what the invocation touches, and reused across warm invocations and threads
(boto3 clients are thread-safe; sessions are not, hence the lock). boto3
honours ``AWS_ENDPOINT_URL`` itself, so the same code talks to AWS or to a
local emulator.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_clients: dict[str, Any] = {}


def client(service: str) -> Any:
    existing = _clients.get(service)
    if existing is not None:
        return existing
    with _lock:
        if service not in _clients:
            import boto3
            from botocore.config import Config

            _clients[service] = boto3.session.Session().client(  # type: ignore[call-overload]
                service,
                config=Config(
                    retries={"mode": "standard", "max_attempts": 3},
                    max_pool_connections=128,
                    connect_timeout=3,
                    read_timeout=30,
                ),
            )
        return _clients[service]


def reset() -> None:
    """Drop cached clients (tests switch endpoints and credentials between cases)."""
    with _lock:
        _clients.clear()
