"""The SQS semantics the pipeline relies on, with moto's own code and with the sandbox's SQS patch."""

from __future__ import annotations

import json
import threading
import time

import boto3
import pytest
from moto import mock_aws

from sandbox.emulator import moto_fixes, sqs_patch


@pytest.fixture(params=["moto", "patched"])
def sqs(request):
    from moto.sqs.models import Queue

    if request.param == "patched":
        sqs_patch.apply()
        request.addfinalizer(sqs_patch.remove)
        assert Queue.delete_message is sqs_patch._delete_message
    else:
        assert Queue.delete_message is not sqs_patch._delete_message
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def counts(sqs, url):
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return (
        int(a["ApproximateNumberOfMessages"]),
        int(a["ApproximateNumberOfMessagesNotVisible"]),
        int(a["ApproximateNumberOfMessagesDelayed"]),
    )


def new_queue(sqs, name="q", **attrs):
    return sqs.create_queue(QueueName=name, Attributes={k: str(v) for k, v in attrs.items()})["QueueUrl"]


def receive(sqs, url, n=10, visibility=30, wait=0):
    return sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=n,
        VisibilityTimeout=visibility,
        WaitTimeSeconds=wait,
        MessageSystemAttributeNames=["ApproximateReceiveCount"],
    ).get("Messages", [])


def test_counts_visible_in_flight_and_delayed(sqs):
    url = new_queue(sqs)
    for n in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=str(n))
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=5)
    assert len(receive(sqs, url, n=2)) == 2
    assert counts(sqs, url) == (3, 2, 1)
    selected = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert selected == {"ApproximateNumberOfMessages": "3"}


def test_visibility_expiry_redelivers_with_a_higher_receive_count(sqs):
    url = new_queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody="x")
    [first] = receive(sqs, url, visibility=1)
    assert receive(sqs, url) == []
    time.sleep(1.2)
    [again] = receive(sqs, url)
    assert again["MessageId"] == first["MessageId"]
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"


def test_dead_letter_after_max_receive_count_without_blocking_others(sqs):
    dlq = new_queue(sqs, "dlq")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = new_queue(sqs, RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}))
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    for _ in range(2):
        assert [m["Body"] for m in receive(sqs, url, visibility=0)] == ["poison"]
    sqs.send_message(QueueUrl=url, MessageBody="good")
    assert [m["Body"] for m in receive(sqs, url, visibility=0)] == ["good"]
    assert [m["Body"] for m in receive(sqs, dlq)] == ["poison"]


def test_delay_holds_a_message_back(sqs):
    url = new_queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody="x", DelaySeconds=1)
    assert receive(sqs, url) == []
    time.sleep(1.2)
    assert len(receive(sqs, url)) == 1


def test_long_polling_wakes_up_when_a_message_arrives(sqs):
    url = new_queue(sqs)
    threading.Timer(0.3, lambda: sqs.send_message(QueueUrl=url, MessageBody="x")).start()
    started = time.monotonic()
    assert len(receive(sqs, url, wait=5)) == 1
    assert time.monotonic() - started < 2.5


def test_change_visibility_releases_and_extends(sqs):
    url = new_queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody="x")
    [m] = receive(sqs, url, visibility=30)
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    [again] = receive(sqs, url, visibility=1)
    resp = sqs.change_message_visibility_batch(
        QueueUrl=url, Entries=[{"Id": "a", "ReceiptHandle": again["ReceiptHandle"], "VisibilityTimeout": 30}]
    )
    assert [s["Id"] for s in resp["Successful"]] == ["a"]
    time.sleep(1.2)
    assert receive(sqs, url) == []  # extended beyond the original 1 s


def test_receipt_handles_delete_once_and_reject_garbage(sqs):
    url = new_queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody="x")
    [m] = receive(sqs, url)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])  # a repeated delete is harmless
    assert counts(sqs, url) == (0, 0, 0)
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")
    resp = sqs.change_message_visibility_batch(
        QueueUrl=url, Entries=[{"Id": "a", "ReceiptHandle": "not-a-handle", "VisibilityTimeout": 5}]
    )
    assert resp["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"


def test_stale_receipt_handle_after_redelivery(sqs):
    url = new_queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody="x")
    [first] = receive(sqs, url, visibility=1)
    time.sleep(1.2)
    [second] = receive(sqs, url, visibility=30)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])  # moto accepts an earlier handle
    assert counts(sqs, url) == (0, 0, 0)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=second["ReceiptHandle"])


def test_purge_empties_the_queue(sqs):
    url = new_queue(sqs)
    for n in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=str(n))
    receive(sqs, url, n=1)
    sqs.purge_queue(QueueUrl=url)
    assert counts(sqs, url) == (0, 0, 0)


def test_fifo_queues_keep_moto_semantics(sqs):
    url = new_queue(sqs, "orders.fifo", FifoQueue="true", ContentBasedDeduplication="true")
    for _ in range(2):
        sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
    assert counts(sqs, url)[0] == 1
    [m] = receive(sqs, url)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert counts(sqs, url) == (0, 0, 0)


def test_patch_refuses_drifted_upstream_code(monkeypatch):
    monkeypatch.setitem(sqs_patch.FINGERPRINTS, "Queue.delete_message", "0" * 64)
    with pytest.raises(sqs_patch.UpstreamDrift, match=r"Queue\.delete_message"):
        sqs_patch.apply()
    assert not sqs_patch._ORIGINALS


def test_patch_refuses_another_moto_version(monkeypatch):
    import moto

    monkeypatch.setattr(moto, "__version__", "5.3.0")
    with pytest.raises(moto_fixes.UnsupportedMotoVersion, match=r"5\.2\.5"):
        sqs_patch.apply()


def test_an_enabled_event_source_mapping_costs_no_receive_before_the_control_plane_polls():
    """moto would receive a batch per SendMessage for an enabled mapping and fail to run it (no Docker),
    dead-lettering the oldest messages unread; in the sandbox the control plane is the mapping's only poller."""
    import io
    import zipfile

    moto_fixes.fix_sqs_event_source_mappings_polled_by_control_plane()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        lam = boto3.client("lambda", region_name="us-east-1")
        iam = boto3.client("iam", region_name="us-east-1")
        dlq = new_queue(sqs, "dlq")
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
        url = new_queue(sqs, "orders", RedrivePolicy=redrive)
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("h.py", "def handler(e, c):\n    return {}\n")
        lam.create_function(
            FunctionName="worker",
            Runtime="python3.13",
            Role=role,
            Handler="h.handler",
            Code={"ZipFile": buf.getvalue()},
        )
        lam.create_event_source_mapping(EventSourceArn=arn, FunctionName="worker", BatchSize=5, Enabled=True)
        for n in range(10):
            sqs.send_message(QueueUrl=url, MessageBody=str(n))
        got = receive(sqs, url)
        assert sorted(m["Body"] for m in got) == [str(n) for n in range(10)]
        assert {m["Attributes"]["ApproximateReceiveCount"] for m in got} == {"1"}
        assert counts(sqs, dlq) == (0, 0, 0)
