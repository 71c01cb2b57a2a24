"""Flash-sale shoppers: one class per checkout path. Run by the sandbox as a subprocess."""

from __future__ import annotations

import os
import random

from locust import HttpUser, constant, task

SKUS = ["SKU-RED-TEE", "SKU-CAP", "SKU-HOODIE", "SKU-SOCKS"]


DECLINE_SHARE = float(os.environ.get("SANDBOX_DECLINE_SHARE", "0"))  # chaos: cards the processor declines


def order() -> dict[str, object]:
    return {
        "customer_id": f"cust-{random.randint(1, 10_000)}",
        "items": [{"sku": random.choice(SKUS), "qty": random.randint(1, 3), "price": "19.99"}],
        "currency": "USD",
        "payment_token": "tok_declined" if random.random() < DECLINE_SHARE else "tok_visa",
    }


class AsyncBuyer(HttpUser):
    """Checks out through POST /orders (accepted, paid in the background)."""

    wait_time = constant(0)

    @task
    def checkout(self) -> None:
        self.client.post("/orders", json=order(), name="POST /orders")


class SyncBuyer(HttpUser):
    """Checks out through POST /orders/sync (pays inline: the seed's baseline)."""

    wait_time = constant(0)

    @task
    def checkout(self) -> None:
        self.client.post("/orders/sync", json=order(), name="POST /orders/sync")


TRACKING_LOG = os.environ.get("SANDBOX_TRACKING_LOG", "")  # JSON lines, one per tracked order
TRACKING_URL = os.environ.get("SANDBOX_TRACKING_URL", "")
RECONNECT_EVERY = int(os.environ.get("SANDBOX_RECONNECT_EVERY", "2"))  # every 2nd tracked order drops and reconnects
TRACK_TIMEOUT_S = float(os.environ.get("SANDBOX_TRACK_TIMEOUT_S", "120"))
TERMINAL = ("PAID", "PAYMENT_FAILED")


class OrderTracker:
    """One customer watching one order over the WebSocket API, by the tracking protocol (docs/tracking.md):
    track from the last sequence seen, drop duplicates by seq, re-track after a gap, and (a share of
    them) drop the connection after the first event and reconnect with the last sequence seen."""

    def __init__(self, url: str, order_id: str, reconnect: bool) -> None:
        self.url, self.order_id, self.reconnect = url, order_id, reconnect
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

        ws = websocket.create_connection(self.url, timeout=5)
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


class TrackingBuyer(HttpUser):
    """Checks out through POST /orders, then follows the order over the WebSocket API until it is paid."""

    wait_time = constant(0)
    tracked = 0

    @task
    def checkout_and_track(self) -> None:
        import json

        resp = self.client.post("/orders", json=order(), name="POST /orders")
        if resp.status_code != 202 or not TRACKING_URL:
            return
        self.tracked += 1
        reconnect = self.tracked % RECONNECT_EVERY == 1 % RECONNECT_EVERY  # the first, then every n-th
        tracker = OrderTracker(TRACKING_URL, resp.json()["order_id"], reconnect=reconnect)
        try:
            tracker.follow()
        finally:
            if TRACKING_LOG:
                with open(TRACKING_LOG, "a") as out:
                    out.write(json.dumps(tracker.record()) + "\n")
