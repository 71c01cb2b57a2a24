import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from orders import bootstrap
from orders.adapters.payment import FixedBudget
from orders.entrypoints import api
from orders.entrypoints.records import process_message
from orders.entrypoints.worker_ecs import QueueWorker
from sandbox.emulator import local_aws
from tests.helpers import http_event

ROOT = Path(__file__).resolve().parents[2]


def place_many(n, valid_order, ctx, **overrides):
    return [
        json.loads(api.handler(http_event("POST", "/orders", {**valid_order, **overrides}), ctx)["body"])["order_id"]
        for _ in range(n)
    ]


def make_worker(aws, **kw):
    c = bootstrap.container()
    c.payments.register_lambda_context(FixedBudget(30_000))
    params = dict(
        sqs=aws.sqs,
        queue_url=aws.queue_url,
        handle=lambda body: process_message(c.service, body),
        concurrency=5,
        visibility_timeout_s=30,
        wait_time_s=1,
        on_stop=c.processor.close,
    )
    params.update(kw)
    return QueueWorker(**params), c


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_worker_pays_every_order_and_deletes_its_messages(aws, valid_order, lambda_context):
    ids = place_many(20, valid_order, lambda_context)
    worker, c = make_worker(aws, concurrency=8)
    worker.start()
    try:
        assert wait_until(lambda: all(aws.order(i)["status"] == "PAID" for i in ids))
        assert wait_until(lambda: aws.depth() == (0, 0))
    finally:
        assert worker.stop(timeout_s=30)
    assert c.processor.charges == 20
    assert c.processor.peak_in_use <= 5


def test_failing_payment_is_retried_then_dead_lettered_without_blocking_others(aws, valid_order, lambda_context):
    [bad] = place_many(1, valid_order, lambda_context, payment_token="tok_flaky")
    good = place_many(5, valid_order, lambda_context)
    worker, c = make_worker(aws, max_backoff_s=0)
    real_charge = c.processor.charge

    def flaky(request):
        if request.token == "tok_flaky":
            from orders.domain.errors import TransientPaymentError

            raise TransientPaymentError("processor timeout")
        return real_charge(request)

    c.processor.charge = flaky
    worker.start()
    try:
        assert wait_until(lambda: all(aws.order(i)["status"] == "PAID" for i in good))
        assert wait_until(lambda: len(aws.queue_messages(aws.dlq_url)) == 1)
    finally:
        worker.stop(timeout_s=30)
    [dead] = aws.queue_messages(aws.dlq_url)
    assert json.loads(dead["Body"])["order_id"] == bad
    assert aws.order(bad)["status"] == "PAYING"  # attempt recorded, not paid, not lost: it waits in the DLQ
    assert worker.stats.failed >= 3


def test_failed_state_write_after_charge_is_redelivered_without_a_second_charge(aws, valid_order, lambda_context):
    # GIVEN the state write fails once, after the processor has charged
    [order_id] = place_many(1, valid_order, lambda_context)
    worker, c = make_worker(aws, max_backoff_s=0)
    real_transition = c.service.repository.transition
    calls = []

    def flaky_transition(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("table unavailable")
        return real_transition(*args, **kwargs)

    c.service.repository.transition = flaky_transition
    # WHEN the worker runs
    worker.start()
    try:
        assert wait_until(lambda: aws.order(order_id)["status"] == "PAID")
        assert wait_until(lambda: aws.depth() == (0, 0))
    finally:
        assert worker.stop(timeout_s=30)
    # THEN the redelivery settled it from the stored payment result
    assert c.processor.charges == 1
    assert worker.stats.failed == 1 and worker.stats.succeeded == 1


def test_stop_with_messages_in_flight_loses_none(aws, valid_order, lambda_context, monkeypatch):
    monkeypatch.setenv("PAYMENT_LATENCY_MS", "400")
    monkeypatch.setenv("PAYMENT_SLOTS", "2")
    bootstrap.reset()
    ids = place_many(12, valid_order, lambda_context)
    worker, c = make_worker(aws, concurrency=10)
    worker.start()
    assert wait_until(lambda: c.processor.in_use == 2)
    assert worker.stop(timeout_s=30)
    paid = [i for i in ids if aws.order(i)["status"] == "PAID"]
    assert 2 <= len(paid) < 12
    # each order is either paid or back on the queue, once the released ones' one long poll has passed
    assert wait_until(lambda: aws.depth() == (12 - len(paid), 0), timeout=30)


def test_a_stopping_task_hides_what_it_releases_for_one_long_poll(aws, valid_order, lambda_context, monkeypatch):
    """Tasks stop together: a message one releases must not feed another's last poll (a receive counted each
    time, until maxReceiveCount dead-letters an order nobody tried to pay)."""
    monkeypatch.setenv("PAYMENT_LATENCY_MS", "2000")
    monkeypatch.setenv("PAYMENT_SLOTS", "1")
    bootstrap.reset()
    place_many(6, valid_order, lambda_context)
    # A long poll of 10 s: the sibling's receive below comes well within it, even on a loaded machine.
    worker, c = make_worker(aws, concurrency=3, wait_time_s=10)
    worker.start()
    assert wait_until(lambda: c.processor.in_use == 1 and worker.held >= 3)
    assert worker.stop(timeout_s=30)
    # WHEN a sibling task's last poll runs right after the release THEN it gets nothing
    sibling = aws.sqs.receive_message(QueueUrl=aws.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    assert sibling.get("Messages", []) == []
    # AND the released orders come back after one long poll, received once more each at most
    assert wait_until(lambda: aws.depth()[0] >= 1, timeout=60)


@pytest.fixture
def moto_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _host, port = server.get_host_and_port()
    yield f"http://localhost:{port}"
    server.stop()


def test_sigterm_drains_and_exits_zero(moto_server, valid_order, monkeypatch, tmp_path):
    """The real entry point as a process: SIGTERM mid-sale exits 0 and loses nothing."""
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": str(ROOT / "runtime"),
    }
    sqs, ddb, sns = (
        boto3.client(s, endpoint_url=moto_server, region_name="us-east-1") for s in ("sqs", "dynamodb", "sns")
    )
    res = local_aws.create_order_resources(sqs, sns, ddb)
    url = res.queue_url
    env.update(
        **res.environment(),
        PAYMENT_SLOTS="2",
        PAYMENT_LATENCY_MS="500",
        WORKER_CONCURRENCY="6",
        SQS_WAIT_TIME_S="1",
        WORKER_STATS_INTERVAL_S="1",
    )
    from orders.domain.events import EventType, OrderEvent

    for n in range(10):
        order = {
            "order_id": f"o-{n}",
            "customer_id": "c",
            "items": [{"sku": "s", "qty": 1, "price": "1.00"}],
            "currency": "USD",
            "total": "1.00",
            "status": "PLACED",
            "created_at": "t",
            "updated_at": "t",
        }
        ddb.put_item(
            TableName="orders",
            Item={
                k: {"S": v}
                if isinstance(v, str)
                else {"L": [{"M": {"sku": {"S": "s"}, "qty": {"N": "1"}, "price": {"S": "1.00"}}}]}
                for k, v in order.items()
            },
        )
        sqs.send_message(
            QueueUrl=url, MessageBody=OrderEvent(EventType.ORDER_PLACED, f"o-{n}", "t", order).to_message()
        )
    proc = subprocess.Popen(
        [sys.executable, "-m", "orders.entrypoints.worker_ecs"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        # Mid-sale by construction, not by timing: SIGTERM once the first order is paid.
        def paid() -> int:
            items = [ddb.get_item(TableName="orders", Key={"order_id": {"S": f"o-{n}"}})["Item"] for n in range(10)]
            return sum(1 for item in items if item["status"]["S"] == "PAID")

        assert wait_until(lambda: paid() >= 1, timeout=60)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out.decode()
    statuses = [
        ddb.get_item(TableName="orders", Key={"order_id": {"S": f"o-{n}"}})["Item"]["status"]["S"] for n in range(10)
    ]
    # what it released is hidden for one long poll (SQS_WAIT_TIME_S), then back on the queue
    assert wait_until(
        lambda: (
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"][
                "ApproximateNumberOfMessagesNotVisible"
            ]
            == "0"
        ),
        timeout=5,
    ), out.decode()
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    # Nothing lost: every order is paid or back on the queue for the next task.
    assert statuses.count("PAID") + int(attrs["ApproximateNumberOfMessages"]) == 10
    assert statuses.count("PAID") >= 1
    assert b"stopped clean=True" in out


class FakeAgent:
    """The ECS agent's task-protection endpoint, recording what the worker asked for."""

    def __init__(self):
        import http.server
        import threading

        calls = self.calls = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                calls.append((self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                return

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_task_protection_is_on_while_messages_are_held_and_off_when_idle():
    from orders.entrypoints.worker_ecs import TaskProtection

    agent = FakeAgent()
    protection = TaskProtection(agent.uri, expires_min=5, idle_s=10)
    protection.update(held=3, now=100.0)
    protection.update(held=2, now=101.0)  # still protected: no new call
    protection.update(held=0, now=105.0)  # idle, but not for long enough
    protection.update(held=0, now=116.0)
    assert [c[1] for c in agent.calls] == [
        {"ProtectionEnabled": True, "ExpiresInMinutes": 5},
        {"ProtectionEnabled": False},
    ]
    assert {c[0] for c in agent.calls} == {"/v1/task-protection/v1/state"}
    agent.server.shutdown()


def test_task_protection_does_nothing_outside_ecs():
    from orders.entrypoints.worker_ecs import TaskProtection

    protection = TaskProtection(None)
    protection.update(held=5)
    assert protection.protected is False
