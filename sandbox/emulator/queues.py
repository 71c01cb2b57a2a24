"""Queue depth, read one way: the two SQS metrics the autoscaler, the probes and the reports all use."""

from __future__ import annotations

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


ASYNC_QUEUE_PREFIX = "lambda-async-"


def async_queue_name(function_name: str) -> str:
    """The queue standing in for Lambda's internal async-invoke queue of one function."""
    return f"{ASYNC_QUEUE_PREFIX}{function_name}"[:80]
