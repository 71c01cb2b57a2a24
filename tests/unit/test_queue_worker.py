"""The ECS worker's retry timing, circuit breaker and visibility bookkeeping, against a fake SQS client."""

import threading

from orders.domain.errors import MalformedEventError, TransientPaymentError
from orders.entrypoints.worker_ecs import CircuitBreaker, QueueWorker, _Held


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_breaker_opens_after_failures_in_a_row_doubles_its_cool_off_and_closes_on_success():
    clock = Clock()
    b = CircuitBreaker(threshold=3, base_s=5, max_s=60, clock=clock)
    b.failed(), b.failed()
    assert b.open_for() == 0  # two in a row: still closed
    b.failed()
    assert b.open_for() == 5
    clock.now = 5
    for _ in range(3):
        b.failed()
    assert b.open_for() == 10  # the second trip waits twice as long
    b.succeeded()
    assert b.open_for() == 0 and b.opened == 2


class FakeSqs:
    """Records each visibility change when its request lands (when the call returns)."""

    def __init__(self):
        self.landed = []
        self.batch_entered = threading.Event()
        self.batch_may_land = threading.Event()

    def change_message_visibility_batch(self, *, QueueUrl, Entries):
        self.batch_entered.set()
        self.batch_may_land.wait(5)
        self.landed += [(e["ReceiptHandle"], e["VisibilityTimeout"]) for e in Entries]
        return {"Failed": []}

    def change_message_visibility(self, *, QueueUrl, ReceiptHandle, VisibilityTimeout):
        self.landed.append((ReceiptHandle, VisibilityTimeout))


def worker(sqs):
    return QueueWorker(sqs=sqs, queue_url="q", handle=lambda body: None, concurrency=2, visibility_timeout_s=60)


def test_a_release_racing_a_heartbeat_is_not_overwritten_by_the_extension():
    # GIVEN a held message due for extension, and the heartbeat's batch call in flight
    sqs = FakeSqs()
    w = worker(sqs)
    msg = _Held(receipt="r1", body="{}", receive_count=1)
    w._hold(msg)
    msg.extended_at -= 60
    heartbeat = threading.Thread(target=w.extend_due)
    heartbeat.start()
    assert sqs.batch_entered.wait(5)
    # WHEN a consumer releases the message meanwhile (visible again in 0 s)
    release = threading.Thread(target=w._release, args=(msg, 0))
    release.start()
    release.join(0.3)
    sqs.batch_may_land.set()
    heartbeat.join(5), release.join(5)
    # THEN the release is the last change to land: the message is visible, not hidden for another 60 s
    assert sqs.landed[-1] == ("r1", 0), sqs.landed


def test_a_transient_failure_waits_the_visibility_timeout_and_poison_none():
    w = worker(FakeSqs())
    assert w._backoff(TransientPaymentError("down")) == 60
    assert w._backoff(MalformedEventError("poison")) == 0
    w.stopping.set()
    assert w._backoff(TransientPaymentError("down")) == w.stop_release_s
