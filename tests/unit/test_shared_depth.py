"""The control plane's readers of one queue's depth share a reading: fewer requests, no staler than stated."""

from sandbox.emulator.queues import Depth, SharedDepth


class FakeSqs:
    def __init__(self) -> None:
        self.calls = 0
        self.visible = 0

    def get_queue_attributes(self, **_: object) -> dict[str, dict[str, str]]:
        self.calls += 1
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(self.visible),
                "ApproximateNumberOfMessagesNotVisible": "1",
            }
        }


def test_readers_within_the_age_share_one_request_and_a_later_one_reads_again():
    """GIVEN a sampler, a drain wait and an autoscaler reading the queue 0.1 s apart WHEN the reading may be
    0.25 s old THEN they make one request between them, and the next after 0.25 s sees the new depth."""
    sqs, now = FakeSqs(), [0.0]
    depth = SharedDepth(sqs, "q", max_age_s=0.25, clock=lambda: now[0])
    sqs.visible = 7
    readings = []
    for t in (0.0, 0.1, 0.2):
        now[0] = t
        readings.append(depth())
    assert sqs.calls == 1 and readings == [Depth(7, 1)] * 3
    sqs.visible = 3
    now[0] = 0.26
    assert depth() == Depth(3, 1) and sqs.calls == 2


def test_an_idle_async_invoker_long_polls_and_a_waiting_retry_keeps_the_polls_short():
    import time

    from sandbox.emulator.event_sources import SnsAsyncInvoker
    from sandbox.emulator.process import Scale

    invoker = SnsAsyncInvoker(
        sqs=None, tap_url="tap", pool=None, retries=2, max_age_s=60, dlq_url="dlq", scale=Scale(1.0)
    )
    assert invoker._wait_s() == SnsAsyncInvoker.WAIT_S == 5  # nothing to retry: the whole long poll
    invoker._retries.append((time.monotonic() + 30, 0, "body", 0.0, 1))
    assert invoker._wait_s() == 1  # a retry waits (due now or pushed while polling): back every second


def test_a_fresh_reading_is_taken_now_and_shared_after():
    sqs, now = FakeSqs(), [0.0]
    depth = SharedDepth(sqs, "q", max_age_s=0.25, clock=lambda: now[0])
    depth()
    sqs.visible = 4
    assert depth() == Depth(0, 1) and depth(fresh=True) == Depth(4, 1) and sqs.calls == 2
    assert depth() == Depth(4, 1) and sqs.calls == 2
