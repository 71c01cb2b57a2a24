"""The payment processor's ledger: every charge it made, keyed by the caller's idempotency key.

The simulator commits a charge the moment it receives the request and answers
after its latency, as a real processor does; a request with a key it already
holds gets the stored result instead of a second charge (or a conflict while
the first is still being answered). Tests, benches and the sandbox read the
ledger to count charges and double charges rather than assume there are none.

Two stores with one contract: in memory (one process) and SQLite (shared by
every worker process of the local sandbox, which are all clients of the same
simulated processor).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    key: str
    order_id: str
    amount: str
    currency: str
    approved: bool
    payment_id: str | None
    decline_reason: str | None
    created_at: float
    ready_at: float  # when the processor's answer to the first request is out
    replays: int = 0  # later requests with the same key, answered from the ledger


@dataclass(frozen=True, slots=True)
class LedgerSummary:
    charges: int  # approved entries: money taken
    declines: int
    replays: int  # requests deduplicated by key
    double_charges: int  # approved entries beyond the first, per order

    def to_dict(self) -> dict[str, int]:
        return {
            "charges": self.charges,
            "declines": self.declines,
            "replays": self.replays,
            "double_charges": self.double_charges,
        }


def summarize(entries: Iterable[LedgerEntry]) -> LedgerSummary:
    """Counts over the ledger; a double charge is a second approved entry for the same order."""
    listed = list(entries)
    approved = Counter(e.order_id for e in listed if e.approved)
    return LedgerSummary(
        charges=sum(approved.values()),
        declines=sum(1 for e in listed if not e.approved),
        replays=sum(e.replays for e in listed),
        double_charges=sum(n - 1 for n in approved.values() if n > 1),
    )


class PaymentLedger(Protocol):
    def claim(self, entry: LedgerEntry) -> tuple[LedgerEntry, bool]:
        """Record ``entry`` unless its key is held; (the entry held for the key, True if this call created it)."""

    def find(self, key: str) -> LedgerEntry | None: ...

    def entries(self) -> list[LedgerEntry]: ...


class InMemoryLedger:
    def __init__(self) -> None:
        self._entries: dict[str, LedgerEntry] = {}
        self._lock = threading.Lock()

    def claim(self, entry: LedgerEntry) -> tuple[LedgerEntry, bool]:
        with self._lock:
            held = self._entries.get(entry.key)
            if held is None:
                self._entries[entry.key] = entry
                return entry, True
            held = replace(held, replays=held.replays + 1)
            self._entries[entry.key] = held
            return held, False

    def find(self, key: str) -> LedgerEntry | None:
        return self._entries.get(key)

    def entries(self) -> list[LedgerEntry]:
        with self._lock:
            return list(self._entries.values())


_SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    key TEXT PRIMARY KEY, order_id TEXT NOT NULL, amount TEXT NOT NULL, currency TEXT NOT NULL,
    approved INTEGER NOT NULL, payment_id TEXT, decline_reason TEXT,
    created_at REAL NOT NULL, ready_at REAL NOT NULL, replays INTEGER NOT NULL DEFAULT 0
)
"""
_COLUMNS = "key, order_id, amount, currency, approved, payment_id, decline_reason, created_at, ready_at, replays"


def _entry(row: tuple[object, ...]) -> LedgerEntry:
    key, order_id, amount, currency, approved, payment_id, reason, created, ready, replays = row
    return LedgerEntry(
        key=str(key),
        order_id=str(order_id),
        amount=str(amount),
        currency=str(currency),
        approved=bool(approved),
        payment_id=None if payment_id is None else str(payment_id),
        decline_reason=None if reason is None else str(reason),
        created_at=float(created),  # type: ignore[arg-type]
        ready_at=float(ready),  # type: ignore[arg-type]
        replays=int(replays),  # type: ignore[call-overload]
    )


class SqliteLedger:
    """The same ledger in one SQLite file, so many processes share one processor's memory."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def claim(self, entry: LedgerEntry) -> tuple[LedgerEntry, bool]:
        conn = self._conn()
        for attempt in range(5):
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    created = conn.execute(
                        f"INSERT OR IGNORE INTO charges ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (
                            entry.key,
                            entry.order_id,
                            entry.amount,
                            entry.currency,
                            int(entry.approved),
                            entry.payment_id,
                            entry.decline_reason,
                            entry.created_at,
                            entry.ready_at,
                            0,
                        ),
                    ).rowcount
                    if not created:
                        conn.execute("UPDATE charges SET replays = replays + 1 WHERE key = ?", (entry.key,))
                    row = conn.execute(f"SELECT {_COLUMNS} FROM charges WHERE key = ?", (entry.key,)).fetchone()
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                return _entry(row), bool(created)
            except sqlite3.OperationalError:  # database is locked beyond the timeout: try again
                if attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def find(self, key: str) -> LedgerEntry | None:
        row = self._conn().execute(f"SELECT {_COLUMNS} FROM charges WHERE key = ?", (key,)).fetchone()
        return _entry(row) if row else None

    def entries(self) -> list[LedgerEntry]:
        return [_entry(r) for r in self._conn().execute(f"SELECT {_COLUMNS} FROM charges").fetchall()]


def open_ledger(path: str | None) -> PaymentLedger:
    """SQLite when a path is given (the sandbox shares one across processes), else in memory."""
    return SqliteLedger(path) if path else InMemoryLedger()
