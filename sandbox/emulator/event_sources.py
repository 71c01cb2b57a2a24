"""What invokes a function: the SQS event source mapping and SNS's asynchronous invoke."""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from planner import aws
from sandbox.emulator.lambda_pool import Environment, LambdaPool
from sandbox.emulator.process import Scale

log = logging.getLogger("sandbox")


class InvokeObserver(Protocol):
    """What a fault harness learns of async invokes (``SnsAsyncInvoker(observer=...)``)."""

    def first_attempt(self, body: str) -> None: ...

    def dead_lettered(self, body: str) -> None: ...


class PollerGroup:
    """Threads running ``_poll`` until ``close``; the shape every emulated poller shares."""

    name = "poller"
    live: weakref.WeakSet[PollerGroup] = weakref.WeakSet()  # started and not closed (``stop_all``)

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _poll(self) -> None:
        raise NotImplementedError

    def start(self, count: int) -> None:
        PollerGroup.live.add(self)
        for n in range(count):
            t = threading.Thread(target=self._poll, name=f"{self.name}-{n}", daemon=True)
            t.start()
            self._threads.append(t)

    def close(self) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(timeout=30)
        PollerGroup.live.discard(self)


def stop_all(groups: list[PollerGroup]) -> None:
    """Tell every poller to stop at once, before any ``close`` joins: each may be in a long poll, and joined
    one group after another their waits would add up."""
    for g in groups:
        g.stop.set()


class SqsEventSource(PollerGroup):
    """The event source mapping: batches from the queue, partial batch failures, max concurrency."""

    name = "esm"

    def __init__(
        self,
        *,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        pool: LambdaPool,
        batch_size: int,
        visibility_s: int,
        wait_s: int,
        scale: Scale,
        max_concurrency: int,
        pollers: tuple[int, int] | None = None,
        capacity: Callable[[float], int] | None = None,
    ) -> None:
        """``pollers``: (minimum, maximum) in provisioned mode. ``capacity``: what the function's environments
        run this many (real) seconds into the sale, when that is not its concurrency (Managed Instances)."""
        self.capacity = capacity
        self.sqs, self.queue_url, self.queue_arn, self.pool = sqs, queue_url, queue_arn, pool
        self.batch_size, self.visibility_s, self.wait_s = batch_size, visibility_s, wait_s
        self.scale, self.max_concurrency, self.pollers = scale, max_concurrency, pollers
        self.first_message_at: float | None = None
        self._next_index = 0
        self._index_lock = threading.Lock()
        super().__init__()

    def allowed(self) -> int:
        """Concurrent batches the mapping runs now (``planner.aws``, in real time): standard, 5 then +300 a
        minute; provisioned, the minimum pollers' invokes then +1,000 a minute; within ``max_concurrency``
        (the environments the function may have)."""
        real_s = 0.0 if self.first_message_at is None else (time.monotonic() - self.first_message_at) * self.scale.k
        if self.pollers is not None:
            return min(self.max_concurrency, aws.lambda_sqs_provisioned_concurrency(real_s, *self.pollers))
        if self.first_message_at is None:
            mapped = aws.LAMBDA_SQS_INITIAL_CONCURRENCY
        else:
            mapped = aws.lambda_sqs_concurrency(real_s, self.max_concurrency)
        return mapped if self.capacity is None else min(mapped, self.capacity(real_s))

    def _poll(self) -> None:
        with self._index_lock:
            index, self._next_index = self._next_index, self._next_index + 1
        while not self.stop.is_set():
            if index >= self.allowed():
                self.stop.wait(0.05)
                continue
            self._poll_then_invoke()

    def _poll_then_invoke(self) -> None:
        """Receive first, take an environment only for a batch: a poller holds no environment while it waits,
        as on AWS, so an environment is busy (and counted a worker) only while it is invoked, and starts cold
        when a batch first needs it."""
        try:
            msgs = self._receive()
        except Exception:
            log.exception("event source poll failed")
            time.sleep(0.5)
            return
        if not msgs:
            return
        env = self.pool.acquire(self.stop)
        if env is None:
            return  # stopping: the batch returns to the queue after its visibility timeout
        try:
            self._invoke(env, msgs)
        except Exception:
            log.exception("event source invoke failed")
        finally:
            self.pool.release(env)

    def _receive(self) -> list[dict[str, Any]]:
        msgs: list[dict[str, Any]] = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_s,
            VisibilityTimeout=self.visibility_s,
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if msgs and self.first_message_at is None:
            self.first_message_at = time.monotonic()
        return msgs

    def _invoke(self, env: Environment, msgs: list[dict[str, Any]]) -> None:
        event = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m.get("MD5OfBody", ""),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": "us-east-1",
                }
                for m in msgs
            ]
        }
        out = self.pool.invoke(env, event)
        failed: set[str] = set()
        if not out.get("ok"):
            failed = {m["MessageId"] for m in msgs}  # whole batch retried after the visibility timeout
        else:
            failed = {f["itemIdentifier"] for f in (out.get("result") or {}).get("batchItemFailures", [])}
        done = [m for m in msgs if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
                ],
            )


class SnsAsyncInvoker(PollerGroup):
    """SNS -> Lambda async invoke: retries with backoff, max event age, then the on-failure destination."""

    name = "async"
    WAIT_S = 5  # an idle invoker's long poll (seconds): it returns at the first event either way

    def __init__(
        self,
        *,
        sqs: Any,
        tap_url: str,
        pool: LambdaPool,
        retries: int,
        max_age_s: float,
        dlq_url: str,
        scale: Scale,
        observer: InvokeObserver | None = None,
    ) -> None:
        self.sqs, self.tap_url, self.pool, self.retries = sqs, tap_url, pool, retries
        self.max_age_s, self.dlq_url, self.scale = max_age_s, dlq_url, scale
        self.observer = observer
        self._retries: list[tuple[float, int, str, float, int]] = []  # (due, order, body, received, attempt)
        self._retry_lock = threading.Lock()
        self._order = itertools.count()
        super().__init__()

    def _event(self, body: str) -> dict[str, Any]:
        """The SNS event Lambda invokes the function with, from what SNS put on the async-invoke queue."""
        note = json.loads(body)
        return {
            "Records": [
                {
                    "EventSource": "aws:sns",
                    "EventVersion": "1.0",
                    "EventSubscriptionArn": note["EventSubscriptionArn"],
                    "Sns": {k: note[k] for k in ("Type", "MessageId", "TopicArn", "Message", "MessageAttributes")},
                }
            ]
        }

    @property
    def pending(self) -> int:
        """Events waiting for a retry (Lambda's internal async queue holds them meanwhile)."""
        with self._retry_lock:
            return len(self._retries)

    def _attempt(self, body: str, received_at: float, attempt: int) -> None:
        """One invoke; a failure is retried later (~1 min, then ~2 min, scaled) without holding a poller."""
        if time.monotonic() - received_at > self.max_age_s:
            self._dead_letter(body, attempt, "event expired (max event age)")
            return
        if attempt == 0 and self.observer is not None:
            self.observer.first_attempt(body)
        env = self.pool.acquire(self.stop)
        if env is None:
            return
        try:
            out = self.pool.invoke(env, self._event(body))
        finally:
            self.pool.release(env)
        if out.get("ok"):
            return
        if attempt < self.retries:
            due = time.monotonic() + self.scale.seconds(60 * (attempt + 1))
            with self._retry_lock:
                heapq.heappush(self._retries, (due, next(self._order), body, received_at, attempt + 1))
            return
        self._dead_letter(body, attempt + 1, str(out.get("error", "")))

    def _dead_letter(self, body: str, attempts: int, error: str) -> None:
        if self.observer is not None:
            self.observer.dead_lettered(body)
        record = {
            "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": attempts},
            "requestPayload": self._event(body),
            "responsePayload": {"errorMessage": error},
        }
        self.sqs.send_message(QueueUrl=self.dlq_url, MessageBody=json.dumps(record))

    def _due_retry(self) -> tuple[str, float, int] | None:
        with self._retry_lock:
            if self._retries and self._retries[0][0] <= time.monotonic():
                _, _, body, received_at, attempt = heapq.heappop(self._retries)
                return body, received_at, attempt
        return None

    def _wait_s(self) -> int:
        """The long poll on the tap queue: ``WAIT_S`` while no retry waits, else 1 s (as before the longer
        poll), so a retry due while this poller waits, or pushed by another, is not held up."""
        with self._retry_lock:
            return 1 if self._retries else self.WAIT_S

    def _poll(self) -> None:
        while not self.stop.is_set():
            try:
                retry = self._due_retry()
                if retry is not None:
                    self._attempt(*retry)
                    continue
                msgs = self.sqs.receive_message(
                    QueueUrl=self.tap_url,
                    MaxNumberOfMessages=1,
                    WaitTimeSeconds=self._wait_s(),
                    VisibilityTimeout=3600,
                ).get("Messages", [])
                for m in msgs:
                    # Lambda's async queue owns the event once accepted: take it off the tap queue now.
                    self.sqs.delete_message(QueueUrl=self.tap_url, ReceiptHandle=m["ReceiptHandle"])
                    self._attempt(m["Body"], time.monotonic(), 0)
            except Exception:  # an invoker never dies with an environment or a failed call
                log.exception("async invoke poll failed")
                self.stop.wait(0.5)
