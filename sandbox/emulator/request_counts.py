"""What the emulator serves, counted by service and operation: the cost of an order to the emulator.

moto is pure Python and one process serves one core's worth of requests, so the requests an order
costs decide how fast a sale can run here (benchmarks/emulator_requests.py). The middleware wraps moto
server's WSGI app; ``GET /_sandbox/requests`` answers the counts so far, ``DELETE`` resets them.

The operation is read the way the SDK sends it: ``X-Amz-Target`` (JSON protocols: DynamoDB, SQS),
``Action`` (query protocol: SNS, CloudFormation; in the form body), else the REST path with its
names replaced by ``*`` (Lambda, ECS control plane calls). The service is the SigV4 credential scope's.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

PATH = "/_sandbox/requests"
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_MAX_FORM_BYTES = 1 << 20  # a query-protocol call is small; a larger body is not parsed for its Action

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def service_of(environ: dict[str, Any]) -> str:
    match = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else "unsigned"


def _rest_operation(method: str, path: str) -> str:
    """``POST /2015-03-31/functions/*/invocations``: literal segments kept, names and ids starred."""
    parts = [p for p in path.split("/") if p]
    kept = [p if re.fullmatch(r"[a-z@$-]+|\d{4}-\d{2}-\d{2}", p) else "*" for p in parts]
    return f"{method} /{'/'.join(kept)}"


def operation_of(environ: dict[str, Any], body: bytes) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target.rsplit(".", 1)[-1]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query:
        return query["Action"][0]
    if body and "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        action = parse_qs(body.decode("utf-8", errors="replace")).get("Action")
        if action:
            return action[0]
    return _rest_operation(environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/"))


class CountingApp:
    """moto server's app, counting each request it serves (thread-safe: the server is threaded)."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            out: dict[str, dict[str, int]] = {}
            for (service, op), n in sorted(self.counts.items()):
                out.setdefault(service, {})[op] = n
            return out

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == PATH:
            if environ.get("REQUEST_METHOD") == "DELETE":
                with self._lock:
                    self.counts.clear()
            payload = json.dumps(self.snapshot()).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
            return [payload]
        body = b""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if 0 < length <= _MAX_FORM_BYTES and "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)  # moto reads the body again
        key = (service_of(environ), operation_of(environ, body))
        with self._lock:
            self.counts[key] += 1
        return self.app(environ, start_response)


def install() -> None:
    """Count every request of the moto server started after this (ThreadedMotoServer builds its app then)."""
    from moto.moto_server import threaded_moto_server

    original = threaded_moto_server.DomainDispatcherApplication
    if getattr(original, "_counted", False):
        return

    def counted(create_app: Any) -> CountingApp:
        return CountingApp(original(create_app))

    counted._counted = True  # type: ignore[attr-defined]
    threaded_moto_server.DomainDispatcherApplication = counted  # type: ignore[assignment,misc]


def read(endpoint: str, *, reset: bool = False) -> dict[str, dict[str, int]]:
    """The counts an emulator endpoint has served (and, with ``reset``, start again from zero)."""
    import urllib.request

    req = urllib.request.Request(f"{endpoint}{PATH}", method="DELETE" if reset else "GET")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return dict(json.loads(resp.read()))
