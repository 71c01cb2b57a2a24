"""The WebSocket API as API Gateway runs it, on loopback: routes to the real tracking handler, and the
management endpoint (``POST /<stage>/@connections/{id}``) the handlers push through.

Each connection gets an id; ``$connect``, every message (routed by its ``action`` field: ``track`` or
``$default``) and ``$disconnect`` become API Gateway WebSocket events for the route function, run in
a pool of environments like any Lambda function here. A post to a connection that is gone answers 410
``GoneException``, as API Gateway does. Messages above API Gateway's 128 KB close the connection (1009).

$connect is authorized as the template says (``connect_authorization``): a CUSTOM (REQUEST) authorizer
is invoked in the handshake with the identity source, ``?ticket=``: without it the upgrade is refused
401 before any function runs, a Deny is 403, and an Allow's context reaches every event of the
connection as ``requestContext.authorizer``, as API Gateway passes it. The authorizer is the route
function here (the stack makes it so). SigV4 on $connect (AWS_IAM) is not checked.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_MESSAGE_BYTES = 128 * 1024  # API Gateway WebSocket message limit
STAGE = "live"


def connect_authorization(template: dict[str, Any]) -> str:
    """How the template's WebSocket API authorizes $connect: ``NONE``, ``AWS_IAM`` or ``CUSTOM``."""
    for r in template.get("Resources", {}).values():
        props = r.get("Properties", {})
        if r.get("Type") == "AWS::ApiGatewayV2::Route" and props.get("RouteKey") == "$connect":
            return str(props.get("AuthorizationType", "NONE"))
    return "NONE"


def authorizer_event(connection_id: str, query: dict[str, str]) -> dict[str, Any]:
    """A WebSocket REQUEST authorizer's input for $connect (the fields the handler reads)."""
    context = ws_event("$connect", connection_id, "CONNECT")["requestContext"]
    return {
        "type": "REQUEST",
        "methodArn": f"arn:aws:execute-api:us-east-1:000000000000:{context['apiId']}/{STAGE}/$connect",
        "headers": {},
        "queryStringParameters": query,
        "requestContext": context,
    }


def allowed(policy: dict[str, Any]) -> bool:
    """Whether an authorizer's policy lets $connect through: an Allow of execute-api:Invoke, no Deny."""
    statements = (policy.get("policyDocument") or {}).get("Statement") or []
    effects = {str(st.get("Effect")) for st in statements if "execute-api:Invoke" in str(st.get("Action"))}
    return "Allow" in effects and "Deny" not in effects


def ws_event(
    route: str,
    connection_id: str,
    event_type: str,
    body: str | None = None,
    authorizer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "requestContext": {
            "routeKey": route,
            "eventType": event_type,
            "connectionId": connection_id,
            "domainName": "localhost",
            "stage": STAGE,
            "apiId": "sandbox-ws",
            "requestId": str(uuid.uuid4()),
            "messageId": str(uuid.uuid4()),
            "connectedAt": int(time.time() * 1000),
            "requestTimeEpoch": int(time.time() * 1000),
            **({"authorizer": authorizer} if authorizer is not None else {}),
        },
        "body": body,
        "isBase64Encoded": False,
    }


def route_of(message: str) -> str:
    """``$request.body.action``: the route named by the message, or $default."""
    try:
        action = json.loads(message).get("action")
    except (ValueError, AttributeError, RecursionError):
        return "$default"
    return "track" if action == "track" else "$default"


class WebSocketFront:
    """Serves the WebSocket API on its own port; ``post`` delivers a management-API frame."""

    def __init__(self, handler: Callable[[dict[str, Any], Any], dict[str, Any]], connect_auth: str = "NONE") -> None:
        self.handler = handler
        self.connect_auth = connect_auth
        self.loop = asyncio.new_event_loop()
        self.connections: dict[str, Any] = {}
        self.counts = {"connected": 0, "messages": 0, "pushed": 0, "gone": 0, "refused": 0}
        self._authorized: dict[int, tuple[str, dict[str, Any]]] = {}  # handshake -> (connection id, context)
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ws-front", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        port = int(os.environ.get("SANDBOX_WS_PORT", "0"))
        async with serve(
            self._connection, "127.0.0.1", port, max_size=MAX_MESSAGE_BYTES, process_request=self._handshake
        ) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await asyncio.Future()  # until the process ends

    async def _invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.loop.run_in_executor(None, self.handler, event, None)
        except Exception as exc:  # an unhandled error: API Gateway answers 500 to the client
            return {"statusCode": 500, "body": str(exc)}

    async def _handshake(self, ws: Any, request: Any) -> Any:
        """Authorize $connect before the upgrade, as API Gateway does; None lets the handshake go on."""
        connection_id = base64.urlsafe_b64encode(uuid.uuid4().bytes[:12]).decode()
        context: dict[str, Any] | None = None
        if self.connect_auth == "CUSTOM":
            query = {k: v[-1] for k, v in parse_qs(urlsplit(request.path).query).items()}
            if not query.get("ticket"):
                self.counts["refused"] += 1
                return ws.respond(401, "Unauthorized\n")  # the identity source is missing: no function runs
            policy = await self._invoke(authorizer_event(connection_id, query))
            if policy.get("statusCode") == 500:  # the authorizer failed: API Gateway answers 500
                self.counts["refused"] += 1
                return ws.respond(500, "Internal Server Error\n")
            if not allowed(policy):
                self.counts["refused"] += 1
                return ws.respond(403, "Forbidden\n")
            context = {"principalId": policy.get("principalId"), **(policy.get("context") or {})}
        self._authorized[id(ws)] = (connection_id, context or {})
        return None

    async def _connection(self, ws: Any) -> None:
        connection_id, context = self._authorized.pop(id(ws))
        authorizer = context or None
        resp = await self._invoke(ws_event("$connect", connection_id, "CONNECT", authorizer=authorizer))
        if int(resp.get("statusCode", 500)) != 200:
            await ws.close(1008, "forbidden")
            return
        self.connections[connection_id] = ws
        self.counts["connected"] += 1
        try:
            async for message in ws:
                text = message if isinstance(message, str) else message.decode("utf-8", errors="replace")
                self.counts["messages"] += 1
                await self._invoke(ws_event(route_of(text), connection_id, "MESSAGE", text, authorizer))
        except Exception:  # a dropped connection ends like a closed one
            pass
        finally:
            self.connections.pop(connection_id, None)
            await self._invoke(ws_event("$disconnect", connection_id, "DISCONNECT", authorizer=authorizer))

    def post(self, connection_id: str, data: bytes) -> int:
        """The management API's PostToConnection: 200, or 410 when the connection is gone."""
        ws = self.connections.get(connection_id)
        if ws is None:
            self.counts["gone"] += 1
            return 410
        try:
            asyncio.run_coroutine_threadsafe(ws.send(data.decode("utf-8")), self.loop).result(timeout=10)
        except Exception:
            self.counts["gone"] += 1
            return 410
        self.counts["pushed"] += 1
        return 200
