"""Order tracking pushed to customers: catch-up from the order's log, then live events, over any socket.

The protocol (docs/tracking.md): a client sends ``{"action": "track", "order_id": ..., "after": N}``
with the last sequence number it saw (0 for none). It first receives every logged transition after N
(``{"type": "event", ...}`` frames, then ``{"type": "caught_up", "last_seq": M}``), then each new
transition as it happens. Sequence numbers are per order, gap-free and increasing: a client drops a
frame whose seq it already has (delivery is at-least-once), and a gap means a live push was lost,
so it sends ``track`` again with its last contiguous seq. Bad input gets ``{"type": "error", ...}``;
the connection stays usable.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from orders.domain.errors import ValidationError
from orders.domain.events import OrderEvent
from orders.domain.models import LogEntry, OrderStatus, parse_after, validate_id
from orders.domain.ports import OrderRepository

MAX_MESSAGE_BYTES = 1024  # a track message is ~100 bytes; anything far larger is refused unread
CONNECTION_TTL_S = 2 * 3600  # API Gateway closes a WebSocket connection after 2 hours
# A connect ticket is redeemed within seconds of being issued (the page asks for one, then connects);
# short enough that one copied from a log or a browser history is worthless.
TICKET_TTL_S = 60
_TICKET_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


class ConnectionStore(Protocol):
    def connect(self, connection_id: str, expires_at: int, customer: str | None = None) -> None:
        """Record a connection and, where auth is on, the customer $connect authenticated."""

    def customer(self, connection_id: str) -> str | None:
        """The customer a connection was opened for (strongly consistent), or None."""

    def track(self, connection_id: str, order_id: str, expires_at: int) -> None:
        """Record that this connection follows this order (idempotent)."""

    def trackers(self, order_id: str) -> list[str]:
        """The connections following this order."""

    def disconnect(self, connection_id: str) -> None:
        """Forget the connection and everything it tracks."""


class TicketStore(Protocol):
    def issue(self, digest: str, customer: str, expires_at: int) -> None:
        """Keep a ticket (by its digest) for this customer until it expires."""

    def redeem(self, digest: str, now: int) -> str | None:
        """Take the ticket once: its customer if it exists and has not expired (then it is gone), else None."""


def ticket_digest(ticket: str) -> str:
    """What is stored of a ticket: a table read (or a backup) never yields one that can be redeemed."""
    return hashlib.sha256(ticket.encode()).hexdigest()


def issue_ticket(store: TicketStore, customer: str, now: float) -> dict[str, Any]:
    """A single-use, short-lived ticket that opens one tracking connection as ``customer``.

    Why a ticket and not the token: a browser cannot set headers on a WebSocket, so the credential travels
    in the URL, where access logs, proxies and histories keep it. The HTTP API has already checked the
    caller's token (its JWT authorizer); the ticket only carries that identity across, once, for a minute.
    """
    ticket = secrets.token_urlsafe(32)
    store.issue(ticket_digest(ticket), customer, int(now) + TICKET_TTL_S)
    return {"ticket": ticket, "expires_in": TICKET_TTL_S}


def redeem_ticket(store: TicketStore, ticket: str | None, now: float) -> str | None:
    """The customer a presented ticket stands for, taking it; None for a missing, unknown, used or old one."""
    if not ticket or not _TICKET_SHAPE.fullmatch(ticket):
        return None  # junk costs no table write: what issue_ticket makes is 43 url-safe characters
    return store.redeem(ticket_digest(ticket), int(now))


class Pusher(Protocol):
    def post(self, connection_id: str, frame: Mapping[str, Any]) -> bool:
        """Send one frame; False if the connection is gone (HTTP 410), other failures raise."""


def event_frame(order_id: str, entry: LogEntry) -> dict[str, Any]:
    return {"type": "event", "order_id": order_id, **entry.to_dict()}


def error_frame(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "error": code, "message": message, **extra}


@dataclass(frozen=True)
class TrackRequest:
    order_id: str
    after: int


def parse_track(raw: str | bytes | None) -> TrackRequest:
    """A ``track`` message, strictly: a small JSON object with a valid order id and sequence."""
    if raw is None or len(raw) == 0:
        raise ValidationError("body", "is required")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ValidationError("body", f"is larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (TypeError, ValueError, RecursionError):
        raise ValidationError("body", "is not JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("body", "must be a JSON object")
    if data.get("action") != "track":
        raise ValidationError("action", "must be 'track'")
    unknown = set(data) - {"action", "order_id", "after"}
    if unknown:
        raise ValidationError(sorted(unknown)[0], "is not a field of track")
    order_id = validate_id(data.get("order_id"), "order_id")
    return TrackRequest(order_id=order_id, after=parse_after(data.get("after", 0)))


@dataclass
class TrackingService:
    orders: OrderRepository
    connections: ConnectionStore
    pusher: Pusher
    now: Callable[[], float]
    # apiAuth iam or jwt: a connection tracks only its customer's orders. none (a demo): any order.
    owners_only: bool = False
    tickets: TicketStore | None = None  # apiAuth=jwt: connect tickets (the connections table holds them)

    def redeem(self, ticket: str | None) -> str | None:
        """The $connect authorizer's question: whom does this ticket stand for (taking it)?"""
        return redeem_ticket(self.tickets, ticket, self.now()) if self.tickets is not None else None

    def _expires(self) -> int:
        return int(self.now()) + CONNECTION_TTL_S

    def connect(self, connection_id: str, customer: str | None = None) -> bool:
        """Keep the connection; False (refuse it) when auth is on and $connect named no customer."""
        if self.owners_only and not customer:
            return False
        self.connections.connect(connection_id, self._expires(), customer)
        return True

    def disconnect(self, connection_id: str) -> None:
        self.connections.disconnect(connection_id)

    def track(self, connection_id: str, raw: str | bytes | None) -> dict[str, Any]:
        """Register, then catch up: an event logged meanwhile is pushed live or read here (or both)."""
        try:
            request = parse_track(raw)
        except ValidationError as exc:
            return self._reply(connection_id, error_frame("bad_request", exc.message, field=exc.field))
        order = self.orders.get(request.order_id)
        if order is not None and self.owners_only and order.customer_id != self.connections.customer(connection_id):
            order = None  # someone else's order: the same answer as for an id that does not exist
        if order is None:
            return self._reply(
                connection_id,
                error_frame("unknown_order", "no order with this id", order_id=request.order_id),
            )
        if request.after > order.seq:
            return self._reply(
                connection_id,
                error_frame(
                    "future_sequence",
                    f"after={request.after} is beyond the order's last event",
                    order_id=request.order_id,
                    last_seq=order.seq,
                ),
            )
        self.connections.track(connection_id, request.order_id, self._expires())
        current = self.orders.get(request.order_id) or order  # read after registering: nothing falls between
        for entry in current.events_after(request.after):
            if not self.pusher.post(connection_id, event_frame(current.order_id, entry)):
                self.connections.disconnect(connection_id)
                return {"statusCode": 410}
        return self._reply(connection_id, {"type": "caught_up", "order_id": current.order_id, "last_seq": current.seq})

    def _reply(self, connection_id: str, frame: dict[str, Any]) -> dict[str, Any]:
        if not self.pusher.post(connection_id, frame):
            self.connections.disconnect(connection_id)
            return {"statusCode": 410}
        return {"statusCode": 200}

    def push(self, event: OrderEvent) -> int:
        """Push one published event to every connection tracking its order; forget gone connections.

        Returns the number of frames delivered. A failure other than 410 raises, so the message is
        retried (clients drop the frames they already have by seq).
        """
        if event.seq < 1:
            return 0  # published before the log existed: nothing a client can place in sequence
        order = event.order
        entry = LogEntry(
            seq=event.seq,
            status=OrderStatus(order["status"]),
            occurred_at=str(order.get("updated_at", event.occurred_at)),
            detail={k: str(order[k]) for k in ("payment_id", "failure_reason") if order.get(k)},
        )
        frame = event_frame(event.order_id, entry)
        delivered = 0
        for connection_id in self.connections.trackers(event.order_id):
            if self.pusher.post(connection_id, frame):
                delivered += 1
            else:
                self.connections.disconnect(connection_id)
        return delivered
