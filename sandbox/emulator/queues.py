"""Queue depth, read one way: the two SQS metrics the autoscaler, the probes and the reports all use."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Depth:
    visible: int  # ApproximateNumberOfMessages: waiting to be received
    in_flight: int  # ApproximateNumberOfMessagesNotVisible (+ what a variant holds outside the queue)

    @property
    def total(self) -> int:
        return self.visible + self.in_flight

    def plus_in_flight(self, n: int) -> Depth:
        return Depth(self.visible, self.in_flight + n)


def queue_depth(sqs: Any, url: str) -> Depth:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return Depth(int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"]))


class SharedDepth:
    """One queue's depth for every reader of the control plane (the sampler, the drain wait, the local
    autoscaler): a reading younger than ``max_age_s`` is handed to the next reader, so between them they ask
    the emulator at most once per ``max_age_s`` instead of once each (at 2-4 Hz apiece, most of the queue
    requests of a small sale)."""

    def __init__(
        self, sqs: Any, url: str, *, max_age_s: float = 0.25, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.sqs, self.url, self.max_age_s, self._clock = sqs, url, max_age_s, clock
        self._lock = threading.Lock()
        self._last: tuple[float, Depth] | None = None

    def __call__(self, *, fresh: bool = False) -> Depth:
        """The depth, at most ``max_age_s`` old; ``fresh``: read now (a reading that decides the run: the
        backlog at the end of the load, an empty queue that ends the drain)."""
        with self._lock:
            now = self._clock()
            if fresh or self._last is None or now - self._last[0] >= self.max_age_s:
                self._last = (now, queue_depth(self.sqs, self.url))
            return self._last[1]


ASYNC_QUEUE_PREFIX = "lambda-async-"


def async_queue_name(function_name: str) -> str:
    """The queue standing in for Lambda's internal async-invoke queue of one function."""
    return f"{ASYNC_QUEUE_PREFIX}{function_name}"[:80]
