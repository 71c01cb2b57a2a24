"""The order event log and the tracking protocol, with in-memory adapters (no network)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from orders.adapters.connections import InMemoryConnectionStore
from orders.domain.errors import FutureSequenceError
from orders.domain.events import EventType
from orders.domain.models import OrderStatus
from orders.domain.tracking import MAX_MESSAGE_BYTES, TrackingService
from tests.helpers import priced
from tests.unit.test_service import make_service


class Sockets:
    """A fake management API: frames per connection; connections in ``gone`` answer 410."""

    def __init__(self) -> None:
        self.frames: dict[str, list[dict[str, Any]]] = {}
        self.gone: set[str] = set()

    def post(self, connection_id: str, frame: Mapping[str, Any]) -> bool:
        if connection_id in self.gone:
            return False
        self.frames.setdefault(connection_id, []).append(json.loads(json.dumps(frame)))
        return True

    def events(self, connection_id: str) -> list[tuple[int, str]]:
        return [(f["seq"], f["status"]) for f in self.frames.get(connection_id, []) if f["type"] == "event"]

    def last(self, connection_id: str) -> dict[str, Any]:
        return self.frames[connection_id][-1]


def setup(valid_order: dict[str, Any]) -> tuple[Any, TrackingService, Sockets, InMemoryConnectionStore]:
    svc, _ = make_service()
    sockets, store = Sockets(), InMemoryConnectionStore()
    tracking = TrackingService(orders=svc.repository, connections=store, pusher=sockets, now=lambda: 1_000.0)
    return svc, tracking, sockets, store


def track(order_id: str, after: int = 0) -> str:
    return json.dumps({"action": "track", "order_id": order_id, "after": after})


def test_every_transition_is_logged_once_in_order_with_a_sequence(valid_order: dict[str, Any]) -> None:
    svc, _ = make_service()
    order = svc.accept(priced(svc, valid_order))
    placed = svc.publisher.events[-1]
    svc.process_placed(placed)
    svc.process_placed(placed)  # a redelivery: already terminal, writes nothing
    final = svc.get(order.order_id)
    assert [(e.seq, e.status) for e in final.log] == [
        (1, OrderStatus.PLACED),
        (2, OrderStatus.PAYING),
        (3, OrderStatus.PAID),
    ]
    assert final.log[-1].detail["payment_id"] == final.payment_id
    assert [e.seq for e in svc.events(order.order_id, after=1)] == [2, 3]
    assert svc.events(order.order_id, after=3) == ()
    with pytest.raises(FutureSequenceError):
        svc.events(order.order_id, after=4)
    # The events carry the sequence of the transition they announce, payment_started included.
    announced = [(e.event_type, e.seq) for e in svc.publisher.events if e.order_id == order.order_id]
    assert announced[:3] == [
        (EventType.ORDER_PLACED, 1),
        (EventType.PAYMENT_STARTED, 2),
        (EventType.PAYMENT_CONFIRMED, 3),
    ]


def test_a_client_reconnecting_after_missing_three_transitions_gets_exactly_those_in_order(
    valid_order: dict[str, Any],
) -> None:
    svc, tracking, sockets, _ = setup(valid_order)
    order = svc.accept(priced(svc, valid_order))
    # GIVEN a client that saw nothing yet and was offline while the order was placed, started and paid
    svc.process_placed(svc.publisher.events[-1])
    # WHEN it reconnects and tracks from sequence 0
    tracking.connect("c-2")
    assert tracking.track("c-2", track(order.order_id, 0)) == {"statusCode": 200}
    # THEN it receives exactly the three, in order, then caught_up
    assert sockets.events("c-2") == [(1, "PLACED"), (2, "PAYING"), (3, "PAID")]
    assert sockets.last("c-2") == {"type": "caught_up", "order_id": order.order_id, "last_seq": 3}


def test_catch_up_then_live_events_reach_the_tracking_connection(valid_order: dict[str, Any]) -> None:
    svc, tracking, sockets, _ = setup(valid_order)
    order = svc.accept(priced(svc, valid_order))
    tracking.connect("c-1")
    tracking.track("c-1", track(order.order_id, 0))
    assert sockets.events("c-1") == [(1, "PLACED")]
    svc.process_placed(svc.publisher.events[-1])
    for event in svc.publisher.events[1:]:
        tracking.push(event)
    assert sockets.events("c-1") == [(1, "PLACED"), (2, "PAYING"), (3, "PAID")]


def test_a_gone_connection_is_forgotten_not_retried(valid_order: dict[str, Any]) -> None:
    svc, tracking, sockets, store = setup(valid_order)
    order = svc.accept(priced(svc, valid_order))
    for cid in ("alive", "gone"):
        tracking.connect(cid)
        tracking.track(cid, track(order.order_id, 1))
    sockets.gone.add("gone")
    svc.process_placed(svc.publisher.events[-1])
    delivered = [tracking.push(e) for e in svc.publisher.events[1:]]
    assert delivered == [1, 1]
    assert store.trackers(order.order_id) == ["alive"]
    assert "gone" not in store.connections


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (None, "bad_request"),
        ("not json", "bad_request"),
        ("[1, 2]", "bad_request"),
        (json.dumps({"action": "subscribe", "order_id": "x"}), "bad_request"),
        (json.dumps({"action": "track", "order_id": "bad id\n"}), "bad_request"),
        (json.dumps({"action": "track", "order_id": "o-1", "after": -1}), "bad_request"),
        (json.dumps({"action": "track", "order_id": "o-1", "after": "1e3"}), "bad_request"),
        (json.dumps({"action": "track", "order_id": "o-1", "after": True}), "bad_request"),
        (json.dumps({"action": "track", "order_id": "o-1", "extra": 1}), "bad_request"),
        ("x" * (MAX_MESSAGE_BYTES + 1), "bad_request"),
        (json.dumps({"action": "track", "order_id": "no-such-order"}), "unknown_order"),
    ],
)
def test_bad_track_messages_get_an_error_frame_and_change_nothing(
    valid_order: dict[str, Any], message: str | None, error: str
) -> None:
    svc, tracking, sockets, store = setup(valid_order)
    tracking.connect("c-1")
    assert tracking.track("c-1", message) == {"statusCode": 200}
    assert sockets.last("c-1")["type"] == "error" and sockets.last("c-1")["error"] == error
    assert store.connections == {"c-1": set()}
    # the connection stays usable
    order = svc.accept(priced(svc, valid_order))
    tracking.track("c-1", track(order.order_id))
    assert sockets.events("c-1") == [(1, "PLACED")]


def test_a_sequence_from_the_future_is_refused_with_the_last_one(valid_order: dict[str, Any]) -> None:
    svc, tracking, sockets, store = setup(valid_order)
    order = svc.accept(priced(svc, valid_order))
    tracking.connect("c-1")
    tracking.track("c-1", track(order.order_id, 7))
    assert sockets.last("c-1") == {
        "type": "error",
        "error": "future_sequence",
        "message": "after=7 is beyond the order's last event",
        "order_id": order.order_id,
        "last_seq": 1,
    }
    assert store.trackers(order.order_id) == []


def test_a_connect_ticket_stands_for_its_customer_once_and_for_a_minute() -> None:
    from orders.domain.tracking import TICKET_TTL_S, issue_ticket, redeem_ticket

    store = InMemoryConnectionStore()
    issued = issue_ticket(store, "alice", now=1_000.0)
    assert issued["expires_in"] == TICKET_TTL_S and len(issued["ticket"]) >= 40
    assert issued["ticket"] not in json.dumps(store.tickets)  # only its digest is kept
    # WHEN it is redeemed, THEN it names alice, and only the first time
    assert redeem_ticket(store, issued["ticket"], now=1_001.0) == "alice"
    assert redeem_ticket(store, issued["ticket"], now=1_001.0) is None
    # AND a late, a made-up, a missing or an absurd ticket names nobody
    late = issue_ticket(store, "alice", now=1_000.0)["ticket"]
    assert redeem_ticket(store, late, now=1_000.0 + TICKET_TTL_S) is None
    for bad in ("made-up", "", None, "x" * 4096, "x" * 42 + "!"):
        assert redeem_ticket(store, bad, now=1_000.0) is None


def test_with_auth_on_a_connection_tracks_only_its_customers_orders(valid_order: dict[str, Any]) -> None:
    svc, tracking, sockets, store = setup(valid_order)
    tracking.owners_only = True
    mine = svc.accept(priced(svc, {**valid_order, "customer_id": "alice"}))
    theirs = svc.accept(priced(svc, {**valid_order, "customer_id": "bob"}))
    # GIVEN $connect without a customer: refused when auth is on
    assert tracking.connect("c0") is False
    assert tracking.connect("c1", "alice") is True
    # WHEN alice tracks her order and bob's
    tracking.track("c1", track(mine.order_id))
    assert sockets.events("c1") == [(1, "PLACED")]
    tracking.track("c1", track(theirs.order_id))
    # THEN bob's gets the answer an unknown id gets, and her connection follows nothing of his
    assert sockets.last("c1")["error"] == "unknown_order"
    assert store.connections["c1"] == {mine.order_id}
