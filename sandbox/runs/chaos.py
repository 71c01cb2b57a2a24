"""The flash sale on a bad day: workers killed mid-payment, a flaky processor, declined cards, poison.

Run by ``python -m sandbox --chaos`` (``make chaos``). The faults:

* kill -9 of a share of the running workers, in waves, while they pay (ECS tasks, Lambda
  environments); the control plane replaces them as ECS and Lambda do;
* transient processor failures (``paymentFailureRate``, a deployed context value) and a share
  of shoppers whose cards are declined;
* poison: a body that is not JSON, an unknown event type, an order id that does not exist,
  a 240 KB body and an event whose amount disagrees with its order, sent to the orders queue
  (when the variant reads it) and published to the topic as ``order_placed``.

Each poison message carries a marker (``chaos_poison``) so the report can tell it from a good
order in the DLQ. Nothing here judges: the report's chaos bars do.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("sandbox")
MARKER = "chaos_poison"
OVERSIZED_BYTES = 240_000  # under SQS's and SNS's 256 KiB with the envelopes around it


@dataclass(frozen=True)
class ChaosPlan:
    kill_share: float = 0.3  # of the running workers, per wave
    waves: int = 3
    wave_every_s: float = 4.0  # sandbox seconds between waves, from when workers first run
    failure_rate: float = 0.1  # transient processor failures (deployed as paymentFailureRate)
    lost_response_share: float = 0.5  # of those, after the charge committed (deployed as paymentLostResponseShare)
    slow_share: float = 0.05  # answers 5x slower than the processor's latency (deployed as paymentSlowShare)
    decline_share: float = 0.05  # shoppers whose card is declined (a terminal PAYMENT_FAILED)
    poison: bool = True
    outage_after_s: float = 2.0  # sandbox seconds from the start of the async load
    outage_s: float = 30.0  # sandbox seconds the processor is down: every charge fails before committing

    def context(self) -> dict[str, str]:
        """What the plan deploys: the processor's failure rate, visibility short enough to see retries, and
        the reconciler's shortest "stuck" age, so it runs into orders still being paid (its hand-backs must
        be as safe as a redelivery)."""
        return {
            "paymentFailureRate": str(self.failure_rate),
            "paymentLostResponseShare": str(self.lost_response_share),
            "paymentSlowShare": str(self.slow_share),
            "lambdaTimeoutSeconds": "10",
            "queueVisibilityTimeoutSeconds": "60",
            "reconcileAfterSeconds": "60",
        }


def is_poison(body: str) -> bool:
    return MARKER in body


class PoisonClock:
    """When each poison event was first invoked and when it was dead-lettered: the fault harness's hook
    into the emulator's async invoker (an ``InvokeObserver``), so the emulator knows nothing of poison."""

    def __init__(self) -> None:
        self._first: dict[int, float] = {}
        self._dead: dict[int, float] = {}
        self._lock = threading.Lock()

    def first_attempt(self, body: str) -> None:
        if is_poison(body):
            with self._lock:
                self._first.setdefault(hash(body), time.monotonic())

    def dead_lettered(self, body: str) -> None:
        if is_poison(body):
            with self._lock:
                self._dead[hash(body)] = time.monotonic()

    def spans(self) -> list[float] | None:
        """First attempt to dead letter per poison event, or None until every one attempted has landed."""
        with self._lock:
            spans = [self._dead[h] - first for h, first in self._first.items() if h in self._dead]
            return spans if spans and len(spans) == len(self._first) else None


def poison_bodies(target: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(kind, body) for each kind of poison; ``target`` is a real order whose event is forged."""
    out = [
        ("not_json", f"{MARKER}-1 this is not JSON {{"),
        (
            "unknown_type",
            json.dumps({"event_type": "order_teleported", "order_id": "chaos-1", "order": {}, MARKER: 2}),
        ),
        (
            "missing_order",
            json.dumps(
                {
                    "event_type": "order_placed",
                    "order_id": "chaos-order-that-does-not-exist",
                    "order": {"order_id": "chaos-order-that-does-not-exist", "total": "-50.00", "currency": "USD"},
                    MARKER: 3,
                }
            ),
        ),
        (
            "oversized",
            json.dumps(
                {
                    "event_type": "order_placed",
                    "order_id": "chaos-big",
                    "order": {},
                    MARKER: 4,
                    "pad": "x" * OVERSIZED_BYTES,
                }
            ),
        ),
    ]
    if target is not None:
        forged = {**target, "total": "0.01"}
        out.append(
            (
                "forged",
                json.dumps({"event_type": "order_placed", "order_id": target["order_id"], "order": forged, MARKER: 5}),
            )
        )
    return out


@dataclass
class ChaosRecord:
    kills: list[tuple[float, int]] = field(default_factory=list)  # (sandbox s, workers killed)
    poison_sent: dict[str, int] = field(default_factory=dict)  # where -> count
    poison_sent_at: float | None = None
    errors: list[str] = field(default_factory=list)
    outage: tuple[float, float] | None = None  # (start, end), seconds since the run started

    @property
    def killed(self) -> int:
        return sum(n for _, n in self.kills)

    @property
    def last_fault_at(self) -> float | None:
        times = [t for t, _ in self.kills] + ([self.poison_sent_at] if self.poison_sent_at is not None else [])
        return max(times, default=None)


class ChaosMonkey:
    """Runs the plan from the start of the async load: poison once, then kill waves while workers pay."""

    def __init__(
        self,
        plan: ChaosPlan,
        *,
        sqs: Any,
        sns: Any,
        queue_url: str | None,
        topic_arn: str,
        api_base: str,
        busy: Any,
        kill: Any,
        t0: float,
        outage_file: Path | None = None,
        time_scale: float = 1.0,
    ) -> None:
        self.plan, self.sqs, self.sns = plan, sqs, sns
        self.queue_url, self.topic_arn, self.api_base = queue_url, topic_arn, api_base
        self.busy, self.kill, self.t0 = busy, kill, t0
        self.outage_file, self.k = outage_file, time_scale
        self.record = ChaosRecord()
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=30)

    def _now(self) -> float:
        return time.monotonic() - self.t0

    def _target_order(self) -> dict[str, Any]:
        """Place a real order through the API: its event will be forged (the order itself is a good one).

        It buys one of the sale's most plentiful product, so it never takes a scarce unit from a shopper.
        """
        with urllib.request.urlopen(self.api_base + "/catalog", timeout=30) as resp:
            products = json.loads(resp.read())["products"]
        product = max(products, key=lambda p: int(p["left"]))
        order: dict[str, Any] = {"customer_id": "chaos-target", "items": [{"sku": product["sku"], "qty": 1}]}
        headers = {"Content-Type": "application/json"}
        if key := os.environ.get("SANDBOX_JWT_KEY"):  # signed in as the chaos customer
            from sandbox.emulator.tokens import mint

            headers["Authorization"] = f"Bearer {mint(Path(key), 'chaos-target')}"
            del order["customer_id"]
        req = urllib.request.Request(
            self.api_base + "/orders", data=json.dumps(order).encode(), method="POST", headers=headers
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            order_id = json.loads(resp.read())["order_id"]
        return {
            "order_id": order_id,
            "customer_id": "chaos-target",
            "total": str(product["price"]),
            "currency": str(product["currency"]),
        }

    def _send_poison(self) -> None:
        bodies = poison_bodies(self._target_order())
        for _, body in bodies:
            if self.queue_url:
                self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)
                self.record.poison_sent["queue"] = self.record.poison_sent.get("queue", 0) + 1
            self.sns.publish(
                TopicArn=self.topic_arn,
                Message=body,
                MessageAttributes={"event_type": {"DataType": "String", "StringValue": "order_placed"}},
            )
            self.record.poison_sent["topic"] = self.record.poison_sent.get("topic", 0) + 1
        self.record.poison_sent_at = self._now()

    def _outage(self) -> None:
        """The processor down for a stretch mid-sale: healthy orders must ride it out, not dead-letter."""
        if self.outage_file is None or self.stop.wait(self.plan.outage_after_s / self.k):
            return
        start = time.time()
        self.outage_file.write_text(str(start + self.plan.outage_s / self.k))
        self.record.outage = (self._now(), self._now() + self.plan.outage_s / self.k)
        log.warning("chaos: the payment processor is down for %.1f s", self.plan.outage_s / self.k)

    def _run(self) -> None:
        outage = threading.Thread(target=self._outage, name="chaos-outage", daemon=True)
        outage.start()
        try:
            if self.plan.poison:
                self._send_poison()
            waves = 0
            while waves < self.plan.waves and not self.stop.is_set():
                if self.busy() <= 0:
                    self.stop.wait(0.2)
                    continue
                if waves:
                    self.stop.wait(self.plan.wave_every_s)
                running = int(self.busy())
                victims = max(1, round(running * self.plan.kill_share)) if running else 0
                killed = self.kill(victims) if victims else 0
                self.record.kills.append((self._now(), killed))
                log.warning("chaos: wave %d killed %d of %d workers", waves + 1, killed, running)
                waves += 1
        except Exception as exc:  # the report shows what the monkey could not do
            log.exception("chaos failed")
            self.record.errors.append(f"{type(exc).__name__}: {exc}")
