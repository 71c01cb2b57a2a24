"""Queue depth for backpressure, read at most once per interval per process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any


class SqsDepthProbe:
    def __init__(
        self,
        queue_url: str,
        client_factory: Callable[[], Any],
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queue_url = queue_url
        self._client_factory = client_factory
        self._interval = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._value = 0
        self._read_at: float | None = None

    def depth(self) -> int:
        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self._interval:
                self._read_at = now
                try:
                    attrs = self._client_factory().get_queue_attributes(
                        QueueUrl=self._queue_url, AttributeNames=["ApproximateNumberOfMessages"]
                    )["Attributes"]
                except Exception:  # advisory only: never refuse orders because the probe failed
                    logging.getLogger(__name__).warning("queue depth unavailable; keeping %d", self._value)
                else:
                    self._value = int(attrs.get("ApproximateNumberOfMessages", 0))
            return self._value
