"""The sandbox's probe of the emulator's latency: every request the model charges is timed, nothing is left."""

import boto3
from moto import mock_aws

from sandbox.stack import latency


def test_the_probe_times_every_request_the_model_charges_and_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        ddb, sqs, sns = (boto3.client(s, region_name="us-east-1") for s in ("dynamodb", "sqs", "sns"))
        topic = sns.create_topic(Name="orders")["TopicArn"]
        for name in ("a", "b", "c"):
            arn = sqs.get_queue_attributes(
                QueueUrl=sqs.create_queue(QueueName=name)["QueueUrl"], AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        before = (ddb.list_tables()["TableNames"], sqs.list_queues()["QueueUrls"], sns.list_topics()["Topics"])

        over = latency.measure(ddb, sqs, sns, ledger_dir=tmp_path, topic_arn=topic)

        after = (ddb.list_tables()["TableNames"], sqs.list_queues()["QueueUrls"], sns.list_topics()["Topics"])
    assert after == before
    assert list(tmp_path.iterdir()) == []
    assert set(over.latency_ms) == set(latency.PER_RECORD) | set(latency.PER_INVOCATION)
    assert all(ms > 0 for ms in over.latency_ms.values())
    # the model's inputs are the sums over each unit's requests
    assert over.record_s == sum(n * over.latency_ms[op] for op, n in latency.PER_RECORD.items()) / 1000
    assert over.invocation_s > 0


def test_overheads_sum_each_units_requests():
    ms = dict.fromkeys([*latency.PER_RECORD, *latency.PER_INVOCATION], 2.0)
    ms["dynamodb:UpdateItem"] = 10.0
    over = latency.overheads(ms)
    # 1 + 1 + 2 + 1 requests at 2 ms, 3 updates at 10 ms; receive and delete at 2 ms
    assert round(over.record_s * 1000, 6) == 5 * 2.0 + 3 * 10.0
    assert round(over.invocation_s * 1000, 6) == 4.0
