"""Order tracking through the sandbox's WebSocket API and management endpoint, with the real handlers.

The route handler runs in the API process's environments against moto server; the pusher runs here,
posting through a real ``apigatewaymanagementapi`` client to the loopback management endpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import websocket

from sandbox.emulator.local_aws import create_connections_table, create_order_resources, moto_server
from tests.helpers import sqs_event

ROOT = Path(__file__).resolve().parents[2]
ORDER = {"customer_id": "cust-1", "items": [{"sku": "SKU-CAP", "qty": 1, "price": "7.50"}], "currency": "USD"}


@dataclass
class Front:
    http: str
    ws: str
    management: str
    env: dict[str, str]
    auth: dict[str, str]


@contextmanager
def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, signed_in: bool = False) -> Iterator[Front]:
    """The API process (HTTP and WebSocket fronts) on moto server; ``signed_in``: apiAuth=jwt as the
    stack deploys it (JWT order routes, $connect behind the ticket authorizer), with the sandbox's key."""
    with moto_server() as endpoint:
        session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test")
        kw = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        res = create_order_resources(*(session.client(s, **kw) for s in ("sqs", "sns", "dynamodb")))  # type: ignore[call-overload]
        table = create_connections_table(session.client("dynamodb", **kw))  # type: ignore[call-overload]
        env = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONPATH": f"{ROOT / 'runtime'}{os.pathsep}{ROOT}",
            "PAYMENT_LATENCY_MS": "10",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "CONNECTIONS_TABLE_NAME": table,
            **res.environment(),
            **({"API_AUTH": "jwt"} if signed_in else {}),
        }
        auth: dict[str, str] = {}
        if signed_in:
            from sandbox.emulator import tokens

            routes = {r: "JWT" for r in ("POST /orders", "GET /orders/{order_id}", "POST /tracking/tickets")}
            auth = {
                "SANDBOX_JWT_KEY": str(tokens.create_key(tmp_path)),
                "SANDBOX_API_ROUTES": json.dumps(routes),
                "SANDBOX_TRACKING_CONNECT_AUTH": "CUSTOM",
            }
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox.emulator.api_front"],
            cwd=ROOT,
            env={
                **env,
                **auth,
                "SANDBOX_API_ENVS": "2",
                "SANDBOX_API_WARM": "1",
                "SANDBOX_LOG_DIR": str(tmp_path),
                "SANDBOX_TRACKING_ENV": json.dumps(env),
                "SANDBOX_TRACKING_ENVS": "2",
            },
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(tmp_path / "api.log").open("w"),
            text=True,
        )
        try:
            ports = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
            management = f"http://127.0.0.1:{ports['port']}/live"
            for key, value in {**env, "WEBSOCKET_MANAGEMENT_ENDPOINT": management}.items():
                monkeypatch.setenv(key, value)
            from orders import bootstrap

            bootstrap.reset()
            yield Front(
                f"http://127.0.0.1:{ports['port']}", f"ws://127.0.0.1:{ports['ws_port']}", management, env, auth
            )
            bootstrap.reset()
        finally:
            proc.stdin.close()  # type: ignore[union-attr]
            proc.wait(timeout=30)


@pytest.fixture
def front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Front]:
    with serve(tmp_path, monkeypatch) as running:
        yield running


def place(front: Front, token: str | None = None) -> str:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    order = {k: v for k, v in ORDER.items() if not (token and k == "customer_id")}  # signed in: no body customer
    req = urllib.request.Request(front.http + "/orders", data=json.dumps(order).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return str(json.loads(resp.read())["order_id"])


def frames_until(ws: Any, kind: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        frame = json.loads(ws.recv())
        out.append(frame)
        if frame["type"] == kind:
            return out


def pay(order_id: str) -> list[Any]:
    """The worker's transitions (the real service against moto); returns the events it published."""
    from orders.adapters.memory import InMemoryPublisher
    from orders.bootstrap import container
    from orders.domain.events import EventType, OrderEvent

    service = container().service
    service.publisher = InMemoryPublisher()
    placed = service.get(order_id)
    service.process_placed(
        OrderEvent(EventType.ORDER_PLACED, order_id, placed.created_at, placed.to_dict(), seq=placed.seq)
    )
    return list(service.publisher.events)


def pay_and_push(order_id: str) -> list[Any]:
    """Pay, then the pusher for each event."""
    from orders.bootstrap import tracking

    events = pay(order_id)
    for event in events:
        tracking().push(event)
    return events


def test_catch_up_then_live_pushes_then_a_gone_connection_is_forgotten(front: Front) -> None:
    order_id = place(front)
    ws = websocket.create_connection(front.ws, timeout=10)
    # WHEN the client tracks from 0: the catch-up is the log so far, then caught_up
    ws.send(json.dumps({"action": "track", "order_id": order_id, "after": 0}))
    first = frames_until(ws, "caught_up")
    assert [(f["seq"], f["status"]) for f in first if f["type"] == "event"] == [(1, "PLACED")]
    # AND the order is paid: PAYING and PAID arrive live, through post_to_connection
    events = pay_and_push(order_id)
    live = [json.loads(ws.recv()) for _ in range(2)]
    assert [(f["seq"], f["status"]) for f in live] == [(2, "PAYING"), (3, "PAID")]
    assert live[1]["payment_id"]
    # The HTTP form of the catch-up agrees
    with urllib.request.urlopen(f"{front.http}/orders/{order_id}/events?after=1", timeout=30) as resp:
        body = json.loads(resp.read())
    assert [e["seq"] for e in body["events"]] == [2, 3] and body["last_seq"] == 3
    # WHEN the client goes away, a push meets 410 and the connection is forgotten, not retried
    ws.close()
    from orders.bootstrap import tracking

    service = tracking()
    deadline = __import__("time").monotonic() + 10
    while service.connections.trackers(order_id) and __import__("time").monotonic() < deadline:
        # $disconnect may still be on its way; a push to the closed socket is answered 410 meanwhile
        service.push(events[-1])
    assert service.connections.trackers(order_id) == []


def test_a_reconnecting_client_gets_exactly_the_three_it_missed_in_order(front: Front) -> None:
    order_id = place(front)
    pay_and_push(order_id)  # nobody tracking: placed, paying and paid happen while the client is away
    ws = websocket.create_connection(front.ws, timeout=10)
    ws.send(json.dumps({"action": "track", "order_id": order_id, "after": 0}))
    got = frames_until(ws, "caught_up")
    assert [(f["seq"], f["status"]) for f in got[:-1]] == [(1, "PLACED"), (2, "PAYING"), (3, "PAID")]
    assert got[-1] == {"type": "caught_up", "order_id": order_id, "last_seq": 3}
    ws.close()


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("{not json", "bad_request"),
        (json.dumps({"action": "track"}), "bad_request"),
        (json.dumps({"action": "track", "order_id": "no-such-order", "after": 0}), "unknown_order"),
        (json.dumps({"action": "track", "order_id": "x", "after": 0, "pad": "p" * 4000}), "bad_request"),
        (json.dumps({"action": "subscribe", "order_id": "x"}), "bad_request"),
    ],
)
def test_bad_messages_get_an_error_frame_and_the_connection_stays_usable(
    front: Front, message: str, error: str
) -> None:
    order_id = place(front)
    ws = websocket.create_connection(front.ws, timeout=10)
    ws.send(message)
    frame = json.loads(ws.recv())
    assert frame["type"] == "error" and frame["error"] == error, frame
    ws.send(json.dumps({"action": "track", "order_id": order_id, "after": 5}))
    future = json.loads(ws.recv())
    assert future["error"] == "future_sequence" and future["last_seq"] == 1
    ws.send(json.dumps({"action": "track", "order_id": order_id, "after": 0}))
    assert [f["type"] for f in frames_until(ws, "caught_up")] == ["event", "caught_up"]
    ws.close()


def test_a_message_beyond_api_gateways_limit_closes_the_connection(front: Front) -> None:
    ws = websocket.create_connection(front.ws, timeout=10)
    ws.send("x" * (128 * 1024 + 1))
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        ws.recv()
        ws.recv()
    # the server closed it with 1009 (message too big), as API Gateway does


def test_the_push_handler_reads_its_queue_and_reports_no_failures(front: Front, lambda_context: Any) -> None:
    from orders.entrypoints import tracking as entry

    order_id = place(front)
    ws = websocket.create_connection(front.ws, timeout=10)
    ws.send(json.dumps({"action": "track", "order_id": order_id, "after": 0}))
    frames_until(ws, "caught_up")
    # GIVEN the worker's events for this order as the pusher's queue delivers them (raw), plus poison
    batch = sqs_event(*(e.to_message() for e in pay(order_id)), "{poison")
    # WHEN the push handler runs, THEN the client gets PAYING and PAID live and no record is failed
    assert entry.push_handler(batch, lambda_context) == {"batchItemFailures": []}
    assert [(f["seq"], f["status"]) for f in (json.loads(ws.recv()) for _ in range(2))] == [(2, "PAYING"), (3, "PAID")]
    ws.close()


def ticket(front: Front, token: str) -> str:
    req = urllib.request.Request(
        front.http + "/tracking/tickets", data=b"", method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 201 and resp.headers["Cache-Control"] == "no-store"
        return str(json.loads(resp.read())["ticket"])


def refused(url: str) -> int:
    """The HTTP status a WebSocket handshake was refused with (0 if it was accepted)."""
    try:
        websocket.create_connection(url, timeout=10).close()
    except websocket.WebSocketBadStatusException as exc:
        return int(exc.status_code)
    return 0


def test_signed_in_tracking_connects_with_a_ticket_and_follows_only_the_callers_orders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandbox.emulator import tokens

    with serve(tmp_path, monkeypatch, signed_in=True) as front:
        key = Path(front.auth["SANDBOX_JWT_KEY"])
        alice, bob = tokens.mint(key, "alice"), tokens.mint(key, "bob")
        mine, theirs = place(front, alice), place(front, bob)
        # WHEN alice connects with a ticket the API issued her, she follows her order
        first = ticket(front, alice)
        ws = websocket.create_connection(f"{front.ws}?ticket={first}", timeout=10)
        ws.send(json.dumps({"action": "track", "order_id": mine, "after": 0}))
        assert [f["type"] for f in frames_until(ws, "caught_up")] == ["event", "caught_up"]
        # THEN bob's order, by its real id, gets the same answer as an id that does not exist
        ws.send(json.dumps({"action": "track", "order_id": theirs, "after": 0}))
        frame = json.loads(ws.recv())
        assert frame["type"] == "error" and frame["error"] == "unknown_order", frame
        ws.close()
        # AND the connection needs a ticket: none is refused before any function runs, a used, forged or
        # made-up one by the authorizer, and the ticket route itself wants a token
        assert refused(front.ws) == 401
        assert refused(f"{front.ws}?ticket={first}") == 403  # single use
        assert refused(f"{front.ws}?ticket={'x' * 43}") == 403
        with pytest.raises(urllib.error.HTTPError) as no_token:
            urllib.request.urlopen(urllib.request.Request(front.http + "/tracking/tickets", data=b"", method="POST"))
        assert no_token.value.code == 401
        # AND bob, with his own ticket, follows his own order
        ws = websocket.create_connection(f"{front.ws}?ticket={ticket(front, bob)}", timeout=10)
        ws.send(json.dumps({"action": "track", "order_id": theirs, "after": 0}))
        assert [f["type"] for f in frames_until(ws, "caught_up")] == ["event", "caught_up"]
        ws.close()
