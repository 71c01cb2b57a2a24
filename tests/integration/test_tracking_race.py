"""The tracking race, forced: a customer starts tracking, and the order's terminal event is pushed right
after. On AWS an index or an eventually consistent read may not show a registration that was just
written; moto always does. The client here hides every write made through it from such reads (what AWS
allows), so a design that finds trackers through one misses the terminal push, and the customer, who has
no gap to notice, waits forever."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from orders.adapters.connections import DynamoConnectionStore
from orders.adapters.dynamodb import DynamoOrderRepository
from orders.domain.events import EventType
from orders.domain.models import OrderStatus
from orders.domain.service import order_event
from orders.domain.tracking import TrackingService
from sandbox.emulator.local_aws import create_connections_table
from tests.helpers import priced


class EventuallyConsistent:
    """A DynamoDB client whose index queries and eventually consistent reads do not yet see the items
    written through it (AWS: "an eventually consistent read might not reflect a recently completed write")."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.recent: set[tuple[str, str]] = set()
        self.stale_reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _remember(self, item: Mapping[str, Any]) -> None:
        self.recent.add((item["connection_id"]["S"], item["target"]["S"]))

    def put_item(self, **kw: Any) -> Any:
        self._remember(kw["Item"])
        return self._client.put_item(**kw)

    def transact_write_items(self, **kw: Any) -> Any:
        for t in kw["TransactItems"]:
            if "Put" in t:
                self._remember(t["Put"]["Item"])
        return self._client.transact_write_items(**kw)

    def query(self, **kw: Any) -> Any:
        resp = self._client.query(**kw)
        if "IndexName" in kw or not kw.get("ConsistentRead"):
            self.stale_reads += 1
            resp["Items"] = [
                i for i in resp.get("Items", []) if (i["connection_id"]["S"], i["target"]["S"]) not in self.recent
            ]
        return resp


class Frames:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def post(self, connection_id: str, frame: Mapping[str, Any]) -> bool:
        self.sent.append((connection_id, dict(frame)))
        return True


def test_a_terminal_push_right_after_track_reaches_the_customer(aws, valid_order):
    from orders import bootstrap

    # GIVEN an order being paid (PAYING, seq 2) and a customer who starts tracking it now
    table = create_connections_table(aws.ddb)
    svc = bootstrap.container().service
    order = svc.accept(priced(svc, valid_order))
    repo = DynamoOrderRepository("orders", lambda: aws.ddb)
    paying = repo.transition(
        order.order_id, expected=OrderStatus.PLACED, target=OrderStatus.PAYING, at="t1", attrs={"payment_key": "k"}
    )
    assert paying is not None and paying.seq == 2
    client = EventuallyConsistent(aws.ddb)
    frames = Frames()
    tracking = TrackingService(
        orders=repo, connections=DynamoConnectionStore(table, lambda: client), pusher=frames, now=time.time
    )
    tracking.connect("conn-1")
    reply = tracking.track("conn-1", json.dumps({"action": "track", "order_id": order.order_id, "after": 0}))
    assert reply == {"statusCode": 200}
    caught_up = [f for _, f in frames.sent if f.get("type") == "caught_up"]
    assert caught_up[-1]["last_seq"] == 2  # the catch-up read the log before the terminal write
    # WHEN the order is paid and its terminal event pushed at once (the registration is still "recent")
    paid = repo.transition(
        order.order_id, expected=OrderStatus.PAYING, target=OrderStatus.PAID, at="t2", attrs={"payment_id": "p-1"}
    )
    assert paid is not None
    delivered = tracking.push(order_event(EventType.PAYMENT_CONFIRMED, paid, "t2"))
    # THEN the customer gets the PAID frame: the pusher's lookup saw the registration
    assert delivered == 1
    statuses = [f.get("status") for _, f in frames.sent if f.get("type") == "event"]
    assert statuses[-1] == "PAID" and client.stale_reads == 0
    # AND a disconnect forgets both rows of the registration: nothing is pushed to it again
    tracking.disconnect("conn-1")
    assert tracking.push(order_event(EventType.PAYMENT_CONFIRMED, paid, "t3")) == 0
    assert aws.ddb.scan(TableName=table)["Count"] == 0


def test_connect_tickets_in_dynamodb_are_single_use_and_expire_before_ttl_deletes_them(aws):
    from orders.domain.tracking import TICKET_TTL_S, issue_ticket, redeem_ticket, ticket_digest

    store = DynamoConnectionStore(create_connections_table(aws.ddb), lambda: aws.ddb)
    now = time.time()
    first, late = (issue_ticket(store, "alice", now)["ticket"] for _ in range(2))
    # GIVEN two tickets: the table holds their digests, never a ticket that could be presented
    rows = aws.ddb.scan(TableName=store._table)["Items"]
    assert {r["connection_id"]["S"] for r in rows} == {f"ticket#{ticket_digest(t)}" for t in (first, late)}
    # THEN the first is taken by its first redeem only, and a late one is refused though TTL has not run
    assert redeem_ticket(store, first, now + 1) == "alice"
    assert redeem_ticket(store, first, now + 1) is None
    assert redeem_ticket(store, late, now + TICKET_TTL_S + 1) is None
    # AND a connection keeps the customer its $connect authenticated, read consistently by track
    store.connect("conn-1", int(now) + 60, "alice")
    assert store.customer("conn-1") == "alice" and store.customer("conn-2") is None
