"""ECS worker: long-polls the orders queue and runs the shared record handler.

``python -m orders.entrypoints.worker_ecs``

* one receiver thread long-polls (20 s waits, batches of up to 10) and never
  holds more than ``WORKER_CONCURRENCY`` + a small prefetch;
* ``WORKER_CONCURRENCY`` consumer threads share the process's one payment
  client (its slots are the real limit);
* a message is deleted only after its order reached a terminal state, in
  batches of up to 10 by an acker thread (consumers go straight back to
  paying, and SQS bills one request per batch); a transient failure makes it
  visible again after the visibility timeout, as Lambda's event source mapping
  does, so ``maxReceiveCount`` receives span minutes and a processor outage is
  ridden out rather than dead-lettering healthy orders; poison is visible again
  at once, so the queue's redrive policy dead-letters it without waiting;
* a circuit breaker stops receiving while the processor keeps failing (every
  consumer's last payment failed transiently), for a cool-off that doubles on
  each trip up to a minute, and closes on the first success;
* a heartbeat extends the visibility of messages still held (waiting for a
  payment slot or paying); it and a release never interleave on one message
  (a release is never overwritten by an extension it raced with);
* SIGTERM/SIGINT: stop receiving, release what has not started paying, let
  payments in progress finish, delete or release everything, exit 0.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orders.domain.errors import MalformedEventError, TransientPaymentError
from orders.entrypoints.observability import ECS_WORKER_SERVICE, RECORDS_FAILED, EmfCounters

log = logging.getLogger("orders.worker_ecs")


@dataclass
class _Held:
    receipt: str
    body: str
    receive_count: int
    extended_at: float = field(default_factory=time.monotonic)


@dataclass
class WorkerStats:
    received: int = 0
    succeeded: int = 0
    failed: int = 0
    released: int = 0
    extended: int = 0
    started_at: float = field(default_factory=time.monotonic)


class TaskProtection:
    """ECS task scale-in protection through the ECS agent endpoint, on while the task holds messages.

    With protection on, a scale-in picks other tasks; it expires by itself
    (``expires_min``) if this task stops refreshing it. Outside ECS
    (no ``ECS_AGENT_URI``) it does nothing.
    """

    def __init__(self, agent_uri: str | None, *, expires_min: int = 5, idle_s: float = 30.0) -> None:
        self.url = f"{agent_uri.rstrip('/')}/task-protection/v1/state" if agent_uri else None
        self.expires_min = expires_min
        self.idle_s = idle_s
        self.protected = False
        self._refreshed = 0.0
        self._idle_since: float | None = None

    def _put(self, enabled: bool) -> None:
        import urllib.request

        body = {"ProtectionEnabled": enabled}
        if enabled:
            body["ExpiresInMinutes"] = self.expires_min  # type: ignore[assignment]
        request = urllib.request.Request(
            self.url or "", data=json.dumps(body).encode(), method="PUT", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=3) as resp:
            resp.read()
        self.protected = enabled

    def update(self, held: int, now: float | None = None) -> None:
        """Called periodically with how many messages the task holds."""
        if self.url is None:
            return
        now = time.monotonic() if now is None else now
        try:
            if held:
                self._idle_since = None
                if not self.protected or now - self._refreshed > self.expires_min * 30:
                    self._put(True)
                    self._refreshed = now
            elif self.protected:
                self._idle_since = self._idle_since or now
                if now - self._idle_since >= self.idle_s:
                    self._put(False)
        except Exception:  # protection is best effort: SIGTERM handling still loses nothing
            log.warning("task protection update failed", exc_info=True)

    def release(self) -> None:
        if self.url and self.protected:
            try:
                self._put(False)
            except Exception:
                log.warning("task protection release failed", exc_info=True)


class CircuitBreaker:
    """Opens after ``threshold`` transient payment failures in a row; stays open for a cool-off that doubles
    on each trip (``base_s`` .. ``max_s``); any success closes it and resets the cool-off."""

    def __init__(
        self, *, threshold: int, base_s: float = 5.0, max_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold, self.base_s, self.max_s, self._clock = threshold, base_s, max_s, clock
        self._in_row = 0
        self._trips = 0
        self._open_until = 0.0
        self._lock = threading.Lock()
        self.opened = 0  # how many times it tripped (stats)

    def failed(self) -> None:
        with self._lock:
            self._in_row += 1
            if self._in_row >= self.threshold and self._clock() >= self._open_until:
                self._open_until = self._clock() + min(self.max_s, self.base_s * 2**self._trips)
                self._trips += 1
                self._in_row = 0
                self.opened += 1
                log.warning("payments keep failing: receiving paused until the processor recovers")

    def succeeded(self) -> None:
        with self._lock:
            self._in_row = self._trips = 0
            self._open_until = 0.0

    def open_for(self) -> float:
        """Seconds until receiving may resume (0: closed)."""
        with self._lock:
            return max(0.0, self._open_until - self._clock())


class QueueWorker:
    """Receive -> handle -> delete loop with bounded concurrency and graceful shutdown."""

    def __init__(
        self,
        *,
        sqs: Any,
        queue_url: str,
        handle: Callable[[str], object],
        concurrency: int,
        visibility_timeout_s: int,
        wait_time_s: int = 20,
        batch_size: int = 10,
        prefetch: int | None = None,
        max_backoff_s: int | None = None,
        on_stop: Callable[[], None] | None = None,
        protection: TaskProtection | None = None,
        counters: EmfCounters | None = None,
    ) -> None:
        self.sqs = sqs
        self.counters = counters
        self.queue_url = queue_url
        self.handle = handle
        self.concurrency = concurrency
        self.visibility_timeout_s = visibility_timeout_s
        self.wait_time_s = wait_time_s
        # What a stopping task gives back stays hidden for one long poll: tasks stop together (a scale-in, a
        # deployment, a compute switch), and each one's last poll would otherwise take the message another
        # just released, counting a receive each time, until maxReceiveCount dead-letters an unpaid order.
        self.stop_release_s = wait_time_s
        self.batch_size = batch_size
        self.capacity = concurrency + (min(batch_size, concurrency) if prefetch is None else prefetch)
        self.max_backoff_s = max_backoff_s if max_backoff_s is not None else visibility_timeout_s
        self.on_stop = on_stop
        self.protection = protection or TaskProtection(None)
        self.stats = WorkerStats()
        self.stopping = threading.Event()
        self._work: queue.Queue[_Held | None] = queue.Queue()
        self._acks: queue.Queue[_Held | None] = queue.Queue()
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        # Held around every visibility change of held messages (extensions, releases), taken before _lock.
        self._visibility = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.breaker = CircuitBreaker(threshold=max(3, concurrency))

    # -- bookkeeping ----------------------------------------------------------
    def _hold(self, msg: _Held) -> None:
        with self._lock:
            self._held[msg.receipt] = msg
            self.stats.received += 1

    def _forget(self, msg: _Held, counter: str | None = None) -> None:
        with self._lock:
            self._held.pop(msg.receipt, None)
            if counter:
                setattr(self.stats, counter, getattr(self.stats, counter) + 1)
            self._room.notify()

    @property
    def held(self) -> int:
        with self._lock:
            return len(self._held)

    # -- receiver -------------------------------------------------------------
    def _receive_loop(self) -> None:
        while not self.stopping.is_set():
            pause = self.breaker.open_for()
            if pause > 0:
                self.stopping.wait(pause)
                continue
            with self._room:
                while len(self._held) >= self.capacity and not self.stopping.is_set():
                    self._room.wait(0.5)
                free = self.capacity - len(self._held)
            if self.stopping.is_set():
                break
            try:
                resp = self.sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=max(1, min(self.batch_size, free)),
                    WaitTimeSeconds=self.wait_time_s,
                    VisibilityTimeout=self.visibility_timeout_s,
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                )
            except Exception:
                log.exception("receive failed; retrying")
                self.stopping.wait(1.0)
                continue
            for raw in resp.get("Messages", []):
                msg = _Held(
                    receipt=raw["ReceiptHandle"],
                    body=raw.get("Body", ""),
                    receive_count=int(raw.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
                )
                self._hold(msg)
                if self.stopping.is_set():
                    self._release(msg, self.stop_release_s)
                else:
                    self._work.put(msg)

    # -- consumers ------------------------------------------------------------
    def _consume_loop(self) -> None:
        while True:
            msg = self._work.get()
            if msg is None:
                return
            if self.stopping.is_set():
                self._release(msg, self.stop_release_s)
                continue
            try:
                self.handle(msg.body)
            except Exception as exc:
                with self._lock:
                    self.stats.failed += 1
                if self.counters is not None:
                    self.counters.add(RECORDS_FAILED)
                if isinstance(exc, TransientPaymentError):
                    self.breaker.failed()
                backoff = self._backoff(exc)
                log.warning("message failed (receive %d): %s; visible again in %ds", msg.receive_count, exc, backoff)
                self._release(msg, backoff)
            else:
                self.breaker.succeeded()
                self._delete(msg)

    def _backoff(self, exc: Exception) -> int:
        """How long a failed message stays hidden: poison none, a transient failure the visibility timeout."""
        if self.stopping.is_set():
            return self.stop_release_s
        if isinstance(exc, MalformedEventError):
            return 0
        return self.max_backoff_s

    def _delete(self, msg: _Held) -> None:
        self._acks.put(msg)

    def _ack_loop(self) -> None:
        """Delete finished messages in batches of up to 10; exits after the None sentinel."""
        done = False
        while not done:
            first = self._acks.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < 10:
                try:
                    nxt = self._acks.get(timeout=0.02)
                except queue.Empty:
                    break
                if nxt is None:
                    done = True
                    break
                batch.append(nxt)
            try:
                resp = self.sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(n), "ReceiptHandle": m.receipt} for n, m in enumerate(batch)],
                )
                for failed in resp.get("Failed", []):
                    # The order is terminal; a redelivery is a harmless duplicate.
                    log.warning("delete failed (%s); the message will be redelivered and skipped", failed.get("Code"))
            except Exception:
                log.exception("delete batch failed; the messages will be redelivered and skipped")
            for m in batch:
                self._forget(m, "succeeded")

    def _release(self, msg: _Held, after_s: int) -> None:
        with self._visibility:
            try:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=msg.receipt, VisibilityTimeout=after_s
                )
            except Exception:
                log.exception("release failed; the message reappears after its visibility timeout")
            finally:
                self._forget(msg, "released")

    # -- heartbeat ------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        period = max(0.5, min(5.0, self.visibility_timeout_s / 3))
        while not self.stopping.wait(period):
            self.extend_due()
            self.protection.update(self.held)

    def extend_due(self) -> None:
        """Extend every held message whose visibility is more than half used.

        Under the visibility lock: a message released meanwhile is no longer held when the list is made, and
        a release waits for the extension in flight, so its shorter visibility is the one that lands.
        """
        with self._visibility:
            self._extend_due()

    def _extend_due(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [m for m in self._held.values() if now - m.extended_at >= self.visibility_timeout_s / 2]
        for start in range(0, len(due), 10):
            chunk = due[start : start + 10]
            try:
                self.sqs.change_message_visibility_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": m.receipt, "VisibilityTimeout": self.visibility_timeout_s}
                        for n, m in enumerate(chunk)
                    ],
                )
            except Exception:
                log.exception("visibility extension failed")
                continue
            for m in chunk:
                m.extended_at = now
            self.stats.extended += len(chunk)

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        targets: list[tuple[str, Callable[[], None]]] = [
            ("receiver", self._receive_loop),
            ("heartbeat", self._heartbeat_loop),
        ]
        targets += [(f"consumer-{n}", self._consume_loop) for n in range(self.concurrency)]
        for name, target in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._acker = threading.Thread(target=self._ack_loop, name="acker", daemon=True)
        self._acker.start()

    def stop(self, timeout_s: float) -> bool:
        """Graceful stop; True if every held message was deleted or released in time."""
        deadline = time.monotonic() + timeout_s
        self.stopping.set()
        if self.on_stop is not None:
            self.on_stop()  # waiting payments give up their turn; those paying finish
        with self._room:
            self._room.notify_all()
        for _ in range(self.concurrency):
            self._work.put(None)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._acks.put(None)  # after every consumer is done: flush the last deletes
        self._acker.join(max(0.0, deadline - time.monotonic()))
        self.protection.release()
        return self.held == 0


def main() -> int:
    from orders.adapters import aws
    from orders.adapters.payment import FixedBudget
    from orders.bootstrap import container
    from orders.entrypoints.records import process_message

    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format='{"level":"%(levelname)s","logger":"%(name)s","message":"%(message)s","time":"%(asctime)s"}',
        stream=sys.stdout,
    )
    from orders.settings import settings

    cfg = settings()
    cfg.require("queue_url", "topic_arn", "orders_table", "idempotency_table")
    c = container()
    c.payments.register_lambda_context(FixedBudget(cfg.visibility_timeout_s * 1000))
    counters = EmfCounters(ECS_WORKER_SERVICE)
    worker = QueueWorker(
        sqs=aws.client("sqs"),
        queue_url=cfg.queue_url,
        handle=lambda body: process_message(c.service, body),
        concurrency=cfg.worker_concurrency,
        visibility_timeout_s=cfg.visibility_timeout_s,
        wait_time_s=int(os.environ.get("SQS_WAIT_TIME_S", "20")),
        on_stop=c.processor.close,
        protection=TaskProtection(
            os.environ.get("ECS_AGENT_URI") if os.environ.get("ECS_TASK_PROTECTION") == "true" else None
        ),
        counters=counters,
    )
    for service in ("dynamodb", "sns"):  # a long-running worker builds its clients before its first message
        aws.client(service)
    stop_requested = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop_requested.set())
    worker.start()
    log.info("worker started: concurrency=%d slots=%d", cfg.worker_concurrency, cfg.payment_slots)
    stats_every = float(os.environ.get("WORKER_STATS_INTERVAL_S", "60"))
    flush_every = min(stats_every, 60.0)  # metrics in one-minute periods, as the alarms read them
    last_stats = time.monotonic()
    while not stop_requested.wait(flush_every):
        counters.flush()
        if time.monotonic() - last_stats >= stats_every:
            last_stats = time.monotonic()
            s = worker.stats
            log.info("stats received=%d succeeded=%d failed=%d held=%d", s.received, s.succeeded, s.failed, worker.held)
    clean = worker.stop(timeout_s=float(os.environ.get("WORKER_STOP_TIMEOUT_S", "25")))
    counters.flush()
    s = worker.stats
    log.info("stopped clean=%s succeeded=%d failed=%d released=%d", clean, s.succeeded, s.failed, s.released)
    return 0


if __name__ == "__main__":
    sys.exit(main())
