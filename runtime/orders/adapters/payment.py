"""Payment processor simulator and the idempotency guard around any processor.

The simulator behaves like the seed's processor: ``slots`` payments at once per
client (process), each taking ``latency_ms``. A real processor is one more
class with the same ``charge`` method.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from orders.adapters.ledger import InMemoryLedger, LedgerEntry, PaymentLedger
from orders.domain.errors import TransientPaymentError
from orders.domain.payment import PaymentRequest, PaymentResult
from orders.domain.ports import PaymentGateway


class SimulatedPaymentProcessor:
    """Slot-limited, slow processor. Shared by every consumer thread of a process.

    Slots are handed out first come, first served, like a client's connection
    pool: a plain semaphore wakes waiters in no particular order, which gave
    some sync checkouts many times the queueing delay of others.
    """

    def __init__(
        self,
        *,
        slots: int,
        latency_ms: int,
        failure_rate: float = 0.0,
        lost_response_share: float = 0.0,
        slow_share: float = 0.0,
        slow_factor: float = 5.0,
        declined_tokens: frozenset[str] = frozenset({"tok_declined"}),
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        ledger: PaymentLedger | None = None,
        clock: Callable[[], float] = time.time,
        key_window_s: float = 24 * 3600,
        outage_file: str | None = None,
    ) -> None:
        if slots < 1:
            raise ValueError("slots must be >= 1")
        self.slots = slots
        self.latency_s = latency_ms / 1000.0
        self.failure_rate = failure_rate
        self.lost_response_share = lost_response_share  # of the failures: after the charge committed
        self.slow_share, self.slow_factor = slow_share, slow_factor  # answers that take slow_factor x latency
        self.declined_tokens = declined_tokens
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.ledger: PaymentLedger = ledger if ledger is not None else InMemoryLedger()
        self._clock = clock
        self.key_window_s = key_window_s  # how long the processor replays a key (Stripe: 24 h)
        # A processor outage, shared by every process that is a client of it: the file holds the epoch
        # second it ends (the sandbox's chaos writes it); while it lasts every charge fails before committing.
        self.outage_file = outage_file
        self._free = slots
        self._waiters: deque[threading.Event] = deque()
        self._slots_lock = threading.Lock()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self.in_use = 0
        self.peak_in_use = 0
        self.charges = 0

    def close(self) -> None:
        """Refuse new charges: callers still waiting for a slot get a transient error (shutdown)."""
        self._closed.set()

    def _acquire(self, order_id: str) -> None:
        closed = TransientPaymentError(f"processor client closed before paying {order_id}")
        with self._slots_lock:
            if self._closed.is_set():
                raise closed
            if self._free and not self._waiters:
                self._free -= 1
                return
            turn = threading.Event()
            self._waiters.append(turn)
        while not turn.wait(0.1):
            if self._closed.is_set():
                with self._slots_lock:
                    if not turn.is_set():
                        self._waiters.remove(turn)
                        raise closed
                break  # handed a slot meanwhile: pass it on below
        if self._closed.is_set():
            self._release()
            raise closed

    def _release(self) -> None:
        """Hand the slot to the longest waiter, or free it."""
        with self._slots_lock:
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self._free += 1

    def charge(self, request: PaymentRequest) -> PaymentResult:
        """Charge once per idempotency key; a repeat gets the first result (or a conflict while it is answered)."""
        self._acquire(request.order_id)
        try:
            with self._lock:
                self.in_use += 1
                self.peak_in_use = max(self.peak_in_use, self.in_use)
                down = self._down()
                fail = down or (self.failure_rate > 0 and self._rng.random() < self.failure_rate)
                lost = fail and not down and self._rng.random() < self.lost_response_share
                slow = self.slow_share > 0 and self._rng.random() < self.slow_share
            latency = self.latency_s * (self.slow_factor if slow else 1.0)
            try:
                if fail and not lost:
                    self._sleep(latency)
                    raise TransientPaymentError(f"processor unavailable for {request.order_id}")
                held = self._commit(request, latency)
                self._sleep(latency)
                if lost:
                    # Charged, and the answer never reaches the caller (a timeout or a dropped connection):
                    # only a caller that looks the charge up by key, or retries with it, learns the truth.
                    raise TransientPaymentError(f"no response from the processor for {request.order_id}")
            finally:
                with self._lock:
                    self.in_use -= 1
        finally:
            self._release()
        return held

    def _down(self) -> bool:
        if not self.outage_file:
            return False
        try:
            with open(self.outage_file) as f:
                return time.time() < float(f.read().strip() or 0)
        except (OSError, ValueError):
            return False

    def _commit(self, request: PaymentRequest, latency_s: float | None = None) -> PaymentResult:
        """Record the charge as the processor receives it; a key it holds is answered from the ledger."""
        now = self._clock()
        latency_s = self.latency_s if latency_s is None else latency_s
        approved = request.token not in self.declined_tokens
        entry, created = self.ledger.claim(
            fresh := LedgerEntry(
                key=request.idempotency_key,
                order_id=request.order_id,
                amount=str(request.amount),
                currency=request.currency,
                approved=approved,
                payment_id=f"pay_{uuid.uuid4().hex[:20]}" if approved else None,
                decline_reason=None if approved else "card_declined",
                created_at=now,
                ready_at=now + latency_s,
            )
        )
        if not created and now - entry.created_at > self.key_window_s:
            # The processor no longer remembers the key: a real one charges again. Only a
            # caller that looks the charge up first (``find``) is safe at this age.
            entry, created = self.ledger.claim(replace(fresh, key=f"{fresh.key}#{uuid.uuid4().hex[:8]}"))
        if created:
            with self._lock:
                self.charges += 1
        elif entry.ready_at > now:
            # The first request with this key is still being answered (HTTP 409 at real processors).
            raise TransientPaymentError(f"a payment with key {request.idempotency_key} is in progress")
        return _result(entry)

    def find(self, idempotency_key: str) -> PaymentResult | None:
        """Look a charge up by its key, as processors allow by merchant reference; none while still in flight."""
        entry = self.ledger.find(idempotency_key)
        if entry is None or self._clock() - entry.created_at > self.key_window_s:
            return None  # never seen, or forgotten: lookup by key has the same window as replay
        if entry.ready_at > self._clock():
            raise TransientPaymentError(f"a payment with key {idempotency_key} is in progress")
        return _result(entry)


def _result(entry: LedgerEntry) -> PaymentResult:
    return PaymentResult(approved=entry.approved, payment_id=entry.payment_id, decline_reason=entry.decline_reason)


class FixedBudget:
    """Stands in for a Lambda context outside Lambda (ECS): a constant time budget.

    Powertools uses it to expire an IN_PROGRESS record if the worker dies
    mid-payment, so a redelivery after the visibility timeout can pay.
    """

    def __init__(self, millis: int) -> None:
        self._millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self._millis


class IdempotentPayments:
    """Wraps a processor so each idempotency key is sent to it at most once at a time.

    Built on Powertools idempotency: the first charge records IN_PROGRESS then
    the result; a duplicate gets the stored result without calling the
    processor; a transient failure deletes the record so redelivery retries.
    """

    def __init__(self, inner: PaymentGateway, persistence_store: Any, *, ttl_s: int) -> None:
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

        self.config = IdempotencyConfig(
            event_key_jmespath="idempotency_key",
            expires_after_seconds=ttl_s,
            raise_on_no_idempotency_key=True,
        )
        self._inner = inner
        self.persistence_store = persistence_store

        def charge(request: dict[str, Any]) -> dict[str, Any]:
            from decimal import Decimal

            req = PaymentRequest(
                order_id=request["order_id"],
                amount=Decimal(request["amount"]),
                currency=request["currency"],
                token=request["token"],
                idempotency_key=request["idempotency_key"],
            )
            return self._inner.charge(req).to_dict()

        self._charge = idempotent_function(
            charge,
            data_keyword_argument="request",
            persistence_store=persistence_store,
            config=self.config,
            key_prefix="orders.payment",
        )

    def register_lambda_context(self, context: Any) -> None:
        """Bound an IN_PROGRESS record by the invocation's remaining time (or a FixedBudget on ECS)."""
        self.config.register_lambda_context(context)

    def charge(self, request: PaymentRequest) -> PaymentResult:
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

        payload = {
            "order_id": request.order_id,
            "amount": str(request.amount),
            "currency": request.currency,
            "token": request.token,
            "idempotency_key": request.idempotency_key,
        }
        try:
            return PaymentResult.from_dict(self._charge(request=payload))
        except IdempotencyAlreadyInProgressError as exc:
            # Another delivery of the same order is paying right now: retry later.
            raise TransientPaymentError(f"payment for {request.order_id} already in progress") from exc

    def find(self, idempotency_key: str) -> PaymentResult | None:
        return self._inner.find(idempotency_key)
