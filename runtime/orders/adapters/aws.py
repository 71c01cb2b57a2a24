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
_session: Any = None


def client(service: str, endpoint_url: str | None = None) -> Any:
    """``endpoint_url``: for services reached at a per-resource URL (a WebSocket API's management endpoint)."""
    cache_key = f"{service}@{endpoint_url}" if endpoint_url else service
    existing = _clients.get(cache_key)
    if existing is not None:
        return existing
    global _session
    with _lock:
        if cache_key not in _clients:
            import boto3
            from botocore.config import Config

            # One session for every client: a session loads config, credentials and
            # endpoint data once; a new session per client repeats that work.
            _session = _session or boto3.session.Session()
            _clients[cache_key] = _session.client(  # type: ignore[call-overload]
                service, endpoint_url=endpoint_url, config=Config(max_pool_connections=128, **bounds(service))
            )
        return _clients[cache_key]


def bounds(service: str) -> dict[str, Any]:
    """Timeouts and retries that keep every call inside the function that makes it.

    The API function has 29 s, and an accept makes up to three calls (create, publish, and the tombstone
    after a failed publish): at most 2 attempts of 1 s to connect and 3 s to read each, about 9 s a call
    with the backoff, so a stuck call ends in time for the answer that says what happened (botocore's
    defaults, 60 s reads and 3 attempts, outlive the function, which then dies before it can answer). SQS
    keeps a read timeout above its 20 s long poll.
    """
    if service == "sqs":
        return {"retries": {"mode": "standard", "max_attempts": 3}, "connect_timeout": 1, "read_timeout": 25}
    return {"retries": {"mode": "standard", "max_attempts": 2}, "connect_timeout": 1, "read_timeout": 3}


def reset() -> None:
    """Drop cached clients (tests switch endpoints and credentials between cases)."""
    global _session
    with _lock:
        _clients.clear()
        _session = None
