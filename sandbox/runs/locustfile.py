"""Flash-sale shoppers: one class per checkout path. Run by the sandbox as a subprocess."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from locust import HttpUser, constant, constant_throughput, task

DECLINE_SHARE = float(os.environ.get("SANDBOX_DECLINE_SHARE", "0"))  # chaos: cards the processor declines
SCARCE_SHARE = float(os.environ.get("SANDBOX_SCARCE_SHARE", "0.3"))  # checkouts that want the scarce SKU
_CATALOG: list[dict[str, object]] = []  # the sale page as the first shopper of the process read it


def sale_page(user: HttpUser) -> list[dict[str, object]]:
    """GET /catalog once per process (the page a shopper loads before the sale opens)."""
    if not _CATALOG:
        resp = user.client.get("/catalog", name="GET /catalog")
        resp.raise_for_status()
        _CATALOG.extend(sorted(resp.json()["products"], key=lambda p: int(str(p["left"]))))
    return _CATALOG


def order(user: HttpUser) -> dict[str, object]:
    """A cart from the sale page, with the prices it displayed: a share want the scarcest SKU (one unit)."""
    products = sale_page(user)
    scarce = random.random() < SCARCE_SHARE
    product = products[0] if scarce or len(products) == 1 else random.choice(products[1:])
    qty = 1 if scarce else random.randint(1, 3)
    return {
        **({} if os.environ.get("SANDBOX_JWT_KEY") else {"customer_id": user.customer_id}),  # type: ignore[attr-defined]
        "items": [{"sku": product["sku"], "qty": qty, "price": product["price"]}],
        "payment_token": "tok_declined" if random.random() < DECLINE_SHARE else "tok_visa",
    }


# Shoppers on a bad day (docs/checkout.md): every checkout carries an Idempotency-Key and is retried with
# it after a timeout, a 5xx, a 409 or a 429; a share of them give up first with a short timeout, a share
# double-submit (two POSTs at once with one key), a share abandon after the first failure.
CHECKOUT_LOG = os.environ.get("SANDBOX_CHECKOUT_LOG", "")  # JSON lines, one per checkout
SHORT_TIMEOUT_SHARE = float(os.environ.get("SANDBOX_SHORT_TIMEOUT_SHARE", "0.05"))
DOUBLE_SUBMIT_SHARE = float(os.environ.get("SANDBOX_DOUBLE_SUBMIT_SHARE", "0.05"))
ABANDON_SHARE = float(os.environ.get("SANDBOX_ABANDON_SHARE", "0.05"))
SHORT_TIMEOUT_S = 0.05
MAX_TRIES = 4
RETRY = {0, 429, 500, 502, 503, 504}  # 0: no answer (a timeout, a dropped connection)
FINAL_409 = ("sold_out", "price_changed")  # answers, not failures: a retry with the same cart changes nothing


def _post(
    user: HttpUser, path: str, body: dict[str, object], key: str, timeout: float | None
) -> tuple[int, dict[str, object]]:
    with user.client.post(
        path, json=body, headers={"Idempotency-Key": key}, name=f"POST {path}", timeout=timeout, catch_response=True
    ) as resp:
        answer: dict[str, object] = {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),  # when it was answered (the API's rate)
            "status": resp.status_code,
            "replayed": resp.headers.get("Idempotent-Replayed") == "true",
        }
        try:
            data = resp.json() or {}
        except Exception:
            data = {}
        answer["order_id"] = data.get("order_id")
        if data.get("error"):
            answer["error"], answer["sku"] = data["error"], data.get("sku")
        if resp.status_code == 409 and data.get("error") in FINAL_409:
            resp.success()  # the sale's answer (sold out), not a failure of the API
        elif resp.status_code >= 400 or resp.status_code == 0:
            resp.failure(f"{resp.status_code} {data.get('error', '')}".strip())
    return resp.status_code, answer


def checkout(user: HttpUser, path: str) -> None:
    """One checkout as a careful client makes it: one key, the same body on every try, until an answer."""
    import json
    import uuid

    import gevent

    key, body = uuid.uuid4().hex, order(user)
    timeout = SHORT_TIMEOUT_S if random.random() < SHORT_TIMEOUT_SHARE else None
    abandon = random.random() < ABANDON_SHARE
    answers: list[dict[str, object]] = []
    twin = gevent.spawn(_post, user, path, body, key, None) if random.random() < DOUBLE_SUBMIT_SHARE else None
    try:
        for attempt in range(MAX_TRIES):
            status, answer = _post(user, path, body, key, timeout)
            answers.append(answer)
            retry = status in RETRY or answer.get("error") == "request_in_progress"
            if not retry or abandon or attempt == MAX_TRIES - 1:
                break
            timeout = None  # the retry waits for its answer
            gevent.sleep(0.2 * (attempt + 1))
        if twin is not None:
            answers.append({**twin.get()[1], "twin": True})
    finally:  # the load's end stops a user mid-checkout: what it was told so far still counts
        if CHECKOUT_LOG:
            with open(CHECKOUT_LOG, "a") as out:
                skus = [i["sku"] for i in body["items"]]  # type: ignore[attr-defined]
                record = {"key": key, "path": path, "skus": skus, "answers": answers, "abandoned": abandon}
                out.write(json.dumps(record) + "\n")


class Shopper(HttpUser):
    """One customer per simulated user (distinct customers, as a real crowd is)."""

    abstract = True

    def on_start(self) -> None:
        import uuid

        self.customer_id = f"cust-{uuid.uuid4().hex[:12]}"
        key = os.environ.get("SANDBOX_JWT_KEY")
        if key:  # signed in: the API takes the customer from the token, never from the body
            from pathlib import Path

            from sandbox.emulator.tokens import mint

            self.client.headers["Authorization"] = f"Bearer {mint(Path(key), self.customer_id)}"


# A sale sized to the machine (sandbox/stack/sizing.py) paces each user; unsized, users check out back to back.
USER_RATE = float(os.environ.get("SANDBOX_USER_RATE", "0"))


class AsyncBuyer(Shopper):
    """Checks out through POST /orders (accepted, paid in the background)."""

    wait_time = constant_throughput(USER_RATE) if USER_RATE > 0 else constant(0)

    @task
    def checkout(self) -> None:
        checkout(self, "/orders")


class SyncBuyer(Shopper):
    """Checks out through POST /orders/sync (pays inline: the seed's baseline)."""

    wait_time = constant(0)

    @task
    def checkout(self) -> None:
        checkout(self, "/orders/sync")


TRACKING_LOG = os.environ.get("SANDBOX_TRACKING_LOG", "")  # JSON lines, one per tracked order
TRACKING_URL = os.environ.get("SANDBOX_TRACKING_URL", "")
RECONNECT_EVERY = int(os.environ.get("SANDBOX_RECONNECT_EVERY", "3"))  # every 3rd tracked order drops and reconnects
TRACK_TIMEOUT_S = float(os.environ.get("SANDBOX_TRACK_TIMEOUT_S", "120"))
TERMINAL = ("PAID", "PAYMENT_FAILED")


def connect(url: str, ticket: str | None) -> Any:
    """A tracking connection, with the connect ticket where $connect wants one."""
    import websocket

    return websocket.create_connection(f"{url}?ticket={ticket}" if ticket else url, timeout=5)


class OrderTracker:
    """One customer watching one order over the WebSocket API, by the tracking protocol (docs/tracking.md):
    track from the last sequence seen, drop duplicates by seq, re-track after a gap, and (a share of
    them) drop the connection after the first event and reconnect with the last sequence seen."""

    def __init__(
        self,
        url: str,
        order_id: str,
        reconnect: bool,
        ticket: Callable[[], str | None] | None = None,
        opened: Any = None,
    ) -> None:
        self.url, self.order_id, self.reconnect = url, order_id, reconnect
        # Signed in, each connection opens with a fresh connect ticket. The first connection was opened
        # before the checkout, as a sale page opens its socket when it loads, so the order is tracked the
        # moment it is placed; a reconnect asks for a new ticket.
        self.ticket, self._opened = ticket, opened
        self.seen: dict[int, str] = {}
        self.frames: list[dict[str, object]] = []
        self.reconnects = self.duplicates = self.resyncs = self.errors = 0
        self.terminal_seq = 0
        self.timed_out = False

    @property
    def last_contiguous(self) -> int:
        n = 0
        while n + 1 in self.seen:
            n += 1
        return n

    def _track(self, ws: object) -> None:
        """Ask for everything after the last contiguous seq: the first track, a reconnect, or a gap."""
        import json

        ws.send(json.dumps({"action": "track", "order_id": self.order_id, "after": self.last_contiguous}))  # type: ignore[attr-defined]

    def _session(self, deadline: float, drop_after_first: bool) -> bool:
        """One connection; True when the order's terminal event has been seen (or time ran out)."""
        import json
        import time

        import websocket

        ws, self._opened = self._opened, None
        if ws is None:
            ws = connect(self.url, self.ticket() if self.ticket is not None else None)
        try:
            self._track(ws)
            catching_up = True
            while time.time() < deadline:
                try:
                    raw = ws.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                received = time.time()
                frame = json.loads(raw)
                if frame["type"] == "caught_up":
                    catching_up = False
                    continue
                if frame["type"] == "error":
                    self.errors += 1
                    return True
                seq = int(frame["seq"])
                if seq in self.seen:
                    self.duplicates += 1
                    continue
                gap = seq > self.last_contiguous + 1
                self.seen[seq] = str(frame["status"])
                self.frames.append(
                    {
                        "seq": seq,
                        "status": frame["status"],
                        "at": received,
                        "occurred_at": frame["occurred_at"],
                        "live": not catching_up,
                    }
                )
                if frame["status"] in TERMINAL:
                    self.terminal_seq = seq
                if gap:  # a live push was lost: ask for what is missing
                    self.resyncs += 1
                    self._track(ws)
                    catching_up = True
                    continue
                if self.terminal_seq and self.last_contiguous >= self.terminal_seq:
                    return True
                if drop_after_first:
                    return False  # gone offline after the first event; follow() reconnects
            self.timed_out = True
            return True
        finally:
            ws.close()

    def follow(self) -> None:
        import random
        import time

        deadline = time.time() + TRACK_TIMEOUT_S
        done = self._session(deadline, drop_after_first=self.reconnect)
        while not done and time.time() < deadline:
            self.reconnects += 1
            time.sleep(random.uniform(0.2, 1.0))  # offline for a moment: events may happen meanwhile
            done = self._session(deadline, drop_after_first=False)

    def record(self) -> dict[str, object]:
        return {
            "order_id": self.order_id,
            "reconnected": self.reconnects > 0,
            "reconnects": self.reconnects,
            "duplicates": self.duplicates,
            "resyncs": self.resyncs,
            "errors": self.errors,
            "terminal_seq": self.terminal_seq,
            "timed_out": self.timed_out,
            "seen": sorted(self.seen),
            "frames": self.frames,
        }


TRACK_EVERY_S = float(os.environ.get("SANDBOX_TRACK_EVERY_S", "0.75"))  # a tracking customer's checkout pace
MAX_FOLLOWING = int(os.environ.get("SANDBOX_MAX_FOLLOWING", "20"))  # orders one tracking customer follows at once


class TrackingBuyer(Shopper):
    """Starts a checkout through POST /orders every TRACK_EVERY_S and follows each order over the WebSocket
    API until it is paid, several at once (one connection each, up to MAX_FOLLOWING), so a sale tracks
    enough orders to measure: reconnects, catch-up after them, and live push latency. The pace does not
    wait for the answers: a slow API tracks as many orders as a fast one."""

    wait_time = constant(TRACK_EVERY_S)
    tracked = 0
    stopped = False

    def on_start(self) -> None:
        from gevent.pool import Pool

        super().on_start()
        self.following = Pool(MAX_FOLLOWING)

    def on_stop(self) -> None:
        self.stopped = True  # no new checkout once the sale ends
        self.following.join(timeout=TRACK_TIMEOUT_S)  # the orders already placed are followed to the end

    @task
    def checkout_and_track(self) -> None:
        if TRACKING_URL:
            self.following.spawn(self._checkout_and_follow)  # waits for a free slot when MAX_FOLLOWING are busy

    def _checkout_and_follow(self) -> None:
        if self.stopped:
            return
        opened = connect(TRACKING_URL, self._ticket())  # the sale page's socket, open before the checkout
        resp = self.client.post("/orders", json=order(self), name="POST /orders")
        if resp.status_code != 202:
            opened.close()
            return
        self.tracked += 1
        reconnect = self.tracked % RECONNECT_EVERY == 1 % RECONNECT_EVERY  # the first, then every n-th
        tracker = OrderTracker(
            TRACKING_URL, resp.json()["order_id"], reconnect=reconnect, ticket=self._ticket, opened=opened
        )
        self._follow(tracker)

    def _ticket(self) -> str | None:
        """A connect ticket for the signed-in shopper (apiAuth=jwt), or None where $connect needs none."""
        if "Authorization" not in self.client.headers:
            return None
        resp = self.client.post("/tracking/tickets", name="POST /tracking/tickets")
        return str(resp.json()["ticket"]) if resp.status_code == 201 else None

    @staticmethod
    def _follow(tracker: OrderTracker) -> None:
        import json

        try:
            tracker.follow()
        finally:
            if TRACKING_LOG:
                with open(TRACKING_LOG, "a") as out:
                    out.write(json.dumps(tracker.record()) + "\n")
