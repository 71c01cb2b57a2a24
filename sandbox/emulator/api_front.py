"""A small local HTTP front that turns requests into HTTP API (payload v2) events for the real API handler."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Context:
    function_name = "sandbox-api"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sandbox-api"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + 29

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# The HTTP API's routes when none are given: the sandbox passes the deployed template's (SANDBOX_API_ROUTES),
# so a route the stack does not deploy is a 404 here as on AWS, never served by the handler anyway.
DEFAULT_ROUTES = dict.fromkeys(
    ("POST /orders", "POST /orders/sync", "GET /orders/{order_id}", "GET /orders/{order_id}/events", "GET /catalog"),
    "NONE",
)
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "ANY")


def http_routes(template: dict[str, Any]) -> dict[str, str]:
    """The route keys an HTTP API in ``template`` serves, each with its authorization type (``NONE``,
    ``AWS_IAM``, ``JWT``); WebSocket routes (``$connect``, actions) are not HTTP routes."""
    out: dict[str, str] = {}
    for r in template.get("Resources", {}).values():
        if r.get("Type") != "AWS::ApiGatewayV2::Route":
            continue
        key = str(r["Properties"]["RouteKey"])
        if key.split(" ", 1)[0] in _METHODS:
            out[key] = str(r["Properties"].get("AuthorizationType", "NONE"))
    return dict(sorted(out.items()))


def match_route(method: str, path: str, routes: Iterable[str]) -> str | None:
    """The route key a request matches: a literal segment first, then a ``{param}`` one, as API Gateway."""
    parts = path.rstrip("/").split("/") if path != "/" else [""]
    best: tuple[int, str] | None = None
    for key in routes:
        verb, _, pattern = key.partition(" ")
        if verb not in (method, "ANY"):
            continue
        want = pattern.rstrip("/").split("/")
        if len(want) != len(parts):
            continue
        literal = 0
        for w, got in zip(want, parts, strict=True):
            if w.startswith("{") and w.endswith("}") and got:
                continue
            if w != got:
                break
            literal += 1
        else:
            if best is None or literal > best[0]:
                best = (literal, key)
    return best[1] if best else None


def to_event(
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    query: str = "",
    routes: Iterable[str] = DEFAULT_ROUTES,
) -> dict[str, Any]:
    from urllib.parse import parse_qsl

    route = match_route(method, path, routes)
    params = dict(parse_qsl(query, keep_blank_values=True))
    return {
        "version": "2.0",
        "routeKey": route or "$default",
        "rawPath": path,
        "rawQueryString": query,
        **({"queryStringParameters": params} if params else {}),
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "sandbox",
            "domainName": "localhost",
            "domainPrefix": "sandbox",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("User-Agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route or "$default",
            "stage": "$default",
            "time": "",
            "timeEpoch": int(time.time() * 1000),
        },
        "body": body.decode("utf-8", errors="replace") if body else None,
        "isBase64Encoded": False,
    }


class ApiFront:
    def __init__(self, handler: Callable[[dict[str, Any], Any], dict[str, Any]], websockets: Any = None) -> None:
        """``websockets``: a WebSocketFront whose management API (``/@connections/{id}``) this server answers."""
        self.handler = handler
        self.websockets = websockets
        routes = os.environ.get("SANDBOX_API_ROUTES")
        self.routes: dict[str, str] = json.loads(routes) if routes else DEFAULT_ROUTES
        # The JWT authorizer: the sandbox issuer's key (sandbox/emulator/tokens.py), when the stack uses one.
        key = os.environ.get("SANDBOX_JWT_KEY")
        self.verifier: Any = None
        if key:
            from pathlib import Path

            from sandbox.emulator.tokens import Verifier

            self.verifier = Verifier(Path(key))
        self.counts: dict[str, int] = {}
        self.accepted = 0
        self._lock = threading.Lock()
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                if self.path == STATS_PATH:
                    payload = json.dumps(front.stats()).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                from urllib.parse import unquote

                # The management API: botocore sends the id URL-encoded (ids may end in base64 "=").
                managed = unquote(self.path.split("?")[0]).partition("/@connections/")
                if managed[1] and front.websockets is not None:
                    self._manage(managed[2], body)
                    return
                path, _, query = self.path.partition("?")
                event = to_event(self.command, path, dict(self.headers), body, query, front.routes)
                resp: dict[str, Any]
                denied = front.authorize(event)
                if event["routeKey"] == "$default":  # no such route deployed: API Gateway answers, not the function
                    resp = {"statusCode": 404, "body": json.dumps({"message": "Not Found"}), "headers": {}}
                elif denied is not None:
                    resp = denied
                else:
                    try:
                        resp = front.handler(event, _Context())
                    except Exception as exc:  # an unhandled error is a 500, as API Gateway reports it
                        resp = {"statusCode": 500, "body": json.dumps({"error": str(exc)}), "headers": {}}
                status = int(resp.get("statusCode", 500))
                front._count(event["routeKey"], status, replayed="Idempotent-Replayed" in (resp.get("headers") or {}))
                payload = (resp.get("body") or "").encode()
                self.send_response(status)
                for key, value in (resp.get("headers") or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _manage(self, connection_id: str, body: bytes) -> None:
                status = front.websockets.post(connection_id, body) if self.command == "POST" else 400
                payload = b"" if status == 200 else json.dumps({"message": "the connection is gone"}).encode()
                self.send_response(status)
                if status == 410:
                    self.send_header("x-amzn-ErrorType", "GoneException")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:
                return

        ThreadingHTTPServer.request_queue_size = 256  # a flash sale opens many connections at once
        ThreadingHTTPServer.allow_reuse_address = True  # a live stack's API restarts on the port it printed
        self.server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("SANDBOX_API_PORT", "0"))), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="api-front", daemon=True)

    def authorize(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """A JWT route's check, as the HTTP API's JWT authorizer makes it: a 401 answer, or None with the
        token's claims in the event (``requestContext.authorizer.jwt``) for the function."""
        if self.routes.get(event["routeKey"]) != "JWT":
            return None
        from sandbox.emulator.tokens import Unauthorized

        try:
            if self.verifier is None:
                raise Unauthorized("the stack uses a JWT authorizer, and the sandbox has no issuer key for it")
            claims = self.verifier.claims(event["headers"].get("authorization"))
        except Unauthorized:
            return {"statusCode": 401, "body": json.dumps({"message": "Unauthorized"}), "headers": {}}
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
        return None

    def _count(self, route: str, status: int, *, replayed: bool = False) -> None:
        """``accepted``: orders, not answers: a retried checkout's replayed 202 is not a second order."""
        with self._lock:
            key = f"{route} {status}" + (" replayed" if replayed else "")
            self.counts[key] = self.counts.get(key, 0) + 1
            if route == "POST /orders" and status == 202 and not replayed:
                self.accepted += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {"counts": dict(self.counts), "accepted": self.accepted}
        if self.websockets is not None:
            out["websocket"] = dict(self.websockets.counts)
        return out

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


STATS_PATH = "/__sandbox/stats"


class EnvironmentPool:
    """The API function as Lambda runs it: each request in an environment of its own, one at a time.

    Environments are local processes of the real handler (``sandbox.emulator.lambda_env``), reused while warm;
    a threaded server sharing one handler would share Powertools' router state between requests.
    """

    def __init__(
        self,
        *,
        max_envs: int,
        log_dir: str,
        handler: str = "orders.entrypoints.api.handler",
        name: str = "api",
        env: dict[str, str] | None = None,
    ) -> None:
        from pathlib import Path

        from sandbox.emulator.lambda_pool import LambdaPool

        self.pool = LambdaPool(
            handler=handler,
            name=name,
            env=dict(os.environ) if env is None else env,
            timeout_s=29.0,
            memory_mb=512,
            max_envs=max_envs,
            log_dir=Path(log_dir),
        )
        self._stop = threading.Event()

    def __call__(self, event: dict[str, Any], _context: Any) -> dict[str, Any]:
        env = self.pool.acquire(self._stop)
        if env is None:
            raise RuntimeError("the API is shutting down")
        try:
            out = self.pool.invoke(env, event)
        finally:
            self.pool.release(env)
        if not out.get("ok"):
            raise RuntimeError(str(out.get("error")))
        return dict(out["result"])

    def close(self) -> None:
        self._stop.set()
        self.pool.close()


def main() -> int:
    """Serve the real API handler through a pool of environments (``SANDBOX_API_ENVS``, warmed at start)."""
    import sys

    envs = EnvironmentPool(
        max_envs=int(os.environ.get("SANDBOX_API_ENVS", "20")), log_dir=os.environ.get("SANDBOX_LOG_DIR", ".")
    )
    envs.pool.warm(int(os.environ.get("SANDBOX_API_WARM", "0")))
    front = ApiFront(envs)  # binds its port: the management endpoint the tracking handlers post to
    ws = None
    tracking_env = os.environ.get("SANDBOX_TRACKING_ENV")  # the tracking route function's environment
    if tracking_env:
        from sandbox.emulator.websocket_front import STAGE, WebSocketFront

        routes = EnvironmentPool(
            max_envs=int(os.environ.get("SANDBOX_TRACKING_ENVS", "4")),
            log_dir=os.environ.get("SANDBOX_LOG_DIR", "."),
            handler="orders.entrypoints.tracking.handler",
            name="tracking",
            env={
                **json.loads(tracking_env),
                "WEBSOCKET_MANAGEMENT_ENDPOINT": f"http://127.0.0.1:{front.port}/{STAGE}",
            },
        )
        ws = WebSocketFront(routes, connect_auth=os.environ.get("SANDBOX_TRACKING_CONNECT_AUTH", "NONE"))
        ws.start()
        front.websockets = ws
    front.start()
    print(json.dumps({"port": front.port, "ws_port": ws.port if ws else None}), flush=True)
    sys.stdout = sys.stderr  # the handler's logs and metrics go to the log file
    sys.stdin.read()  # serve until the sandbox closes the pipe
    front.close()
    envs.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
