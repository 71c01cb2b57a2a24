"""The sandbox's probe of the emulator's latency: every request the model charges is timed, nothing is left."""

import json

import boto3
from moto import mock_aws

from sandbox.stack import latency


def test_the_probe_times_every_request_the_model_charges_and_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        ddb, sqs, sns = (boto3.client(s, region_name="us-east-1") for s in ("dynamodb", "sqs", "sns"))
        topic = sns.create_topic(Name="orders")["TopicArn"]
        filters = {"a": None, "b": {"event_type": ["payment_confirmed"]}, "c": {"event_type": ["order_placed"]}}
        for name, policy in filters.items():
            arn = sqs.get_queue_attributes(
                QueueUrl=sqs.create_queue(QueueName=name)["QueueUrl"], AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
            attrs = {"FilterPolicy": json.dumps(policy)} if policy else {}
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes=attrs)
        before = (ddb.list_tables()["TableNames"], sqs.list_queues()["QueueUrls"], sns.list_topics()["Topics"])

        over = latency.measure(ddb, sqs, sns, ledger_dir=tmp_path, topic_arn=topic)

        after = (ddb.list_tables()["TableNames"], sqs.list_queues()["QueueUrls"], sns.list_topics()["Topics"])
    assert after == before
    assert list(tmp_path.iterdir()) == []
    assert set(over.latency_ms) == set(latency.PER_RECORD) | set(latency.PER_INVOCATION)
    assert all(ms > 0 for ms in over.latency_ms.values())
    assert over.record_s > 0 and over.invocation_s > 0


def test_the_probe_topic_delivers_as_the_orders_topic_does(tmp_path, monkeypatch):
    """GIVEN an orders topic with a filtered and an unfiltered queue WHEN the probe builds its topic THEN each
    probe queue is subscribed with the same filter, and its policy lets the probe topic send (the sandbox's
    SNS refuses a delivery the queue's policy does not allow: a publish timed without deliveries is cheap)."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        ddb, sqs, sns = (boto3.client(s, region_name="us-east-1") for s in ("dynamodb", "sqs", "sns"))
        topic = sns.create_topic(Name="orders")["TopicArn"]
        wanted = [None, json.dumps({"event_type": ["payment_confirmed"]})]
        for n, policy in enumerate(wanted):
            url = sqs.create_queue(QueueName=f"q{n}")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            sns.subscribe(
                TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"FilterPolicy": policy} if policy else {}
            )
        subscribed, policies = [], {}
        real_subscribe, real_set = sns.subscribe, sqs.set_queue_attributes
        monkeypatch.setattr(sns, "subscribe", lambda **kw: (subscribed.append(kw), real_subscribe(**kw))[1])
        monkeypatch.setattr(
            sqs, "set_queue_attributes", lambda **kw: (policies.update({kw["QueueUrl"]: kw}), real_set(**kw))[1]
        )
        latency.measure(ddb, sqs, sns, ledger_dir=tmp_path, topic_arn=topic)
    assert sorted(str(s["Attributes"].get("FilterPolicy")) for s in subscribed) == sorted(map(str, wanted))
    probe_topic = subscribed[0]["TopicArn"]
    assert len(policies) == len(wanted)
    for kw in policies.values():
        [statement] = json.loads(kw["Attributes"]["Policy"])["Statement"]
        assert statement["Action"] == "sqs:SendMessage"
        assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == probe_topic


def test_overheads_sum_each_units_requests():
    ms = dict.fromkeys([*latency.PER_RECORD, *latency.PER_INVOCATION], 2.0)
    ms["dynamodb:UpdateItem"] = 10.0
    over = latency.overheads(ms)
    # 1 + 1 + 2 + 1 requests at 2 ms, 3 updates at 10 ms; receive and delete at 2 ms
    assert round(over.record_s * 1000, 6) == 5 * 2.0 + 3 * 10.0
    assert round(over.invocation_s * 1000, 6) == 4.0
