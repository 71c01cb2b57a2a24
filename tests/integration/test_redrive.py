"""DLQ redrive: grouped by reason, what can succeed goes back, poison stays, and nothing is charged twice."""

import json

import pytest

from orders import bootstrap
from orders.entrypoints import api, worker_lambda
from orders.redrive import CAN_SUCCEED, SPENT, Redrive, main
from tests.helpers import http_event, sqs_event


def place(valid_order, ctx) -> str:
    return json.loads(api.handler(http_event("POST", "/orders", valid_order), ctx)["body"])["order_id"]


@pytest.fixture
def tool(aws):
    return Redrive(
        sqs=aws.sqs,
        ddb=aws.ddb,
        sns=aws.sns,
        dlq_url=aws.dlq_url,
        queue_url=aws.queue_url,
        table="orders",
        topic_arn=aws.topic_arn,
    )


def test_show_groups_by_reason_and_redrive_sends_back_only_what_can_succeed(aws, tool, valid_order, lambda_context):
    # GIVEN a DLQ holding: an order that failed to pay (still PAYING), a duplicate of a paid order,
    # an on-failure record wrapping a pending order (SNS trigger), and poison of three kinds
    pending = place(valid_order, lambda_context)
    paid = place(valid_order, lambda_context)
    wrapped = place(valid_order, lambda_context)
    bodies = {m["Body"] for m in aws.queue_messages()}
    by_id = {json.loads(b)["order_id"]: b for b in bodies}
    worker_lambda.handler(sqs_event(by_id[paid]), lambda_context)  # paid, so its copy is spent
    record = {"requestPayload": {"Records": [{"Sns": {"Message": by_id[wrapped]}}]}}
    dlq = [
        by_id[pending],
        by_id[paid],
        json.dumps(record),
        "not json",
        json.dumps({"event_type": "order_teleported", "order_id": "x", "order": {}}),
        json.dumps({"event_type": "order_placed", "order_id": "no-such-order", "order": {}}),
        json.dumps({"event_type": "order_placed", "order_id": pending, "order": {"total": "0.01"}}),  # forged
    ]
    for body in dlq:
        aws.sqs.send_message(QueueUrl=aws.dlq_url, MessageBody=body)
    aws.sqs.purge_queue(QueueUrl=aws.queue_url)  # the orders queue starts empty

    # WHEN an operator looks THEN every message is counted under its reason, and nothing moved
    counts = tool.show()
    assert counts[CAN_SUCCEED] == 2 and counts[SPENT] == 1
    assert counts["poison: order does not exist"] == 1 and counts["poison: fields disagree with the order"] == 1
    assert sum(counts.values()) == 7 and aws.depth(aws.dlq_url)[0] == 7

    # WHEN they redrive THEN the two that can succeed go back, the spent one is dropped, poison stays
    done = tool.redrive(rate=100, limit=100, target="queue", dry_run=False, drop_spent=True)
    assert done["redriven"] == 2 and done["spent duplicates dropped"] == 1
    back = [m["Body"] for m in aws.queue_messages()]
    assert sorted(json.loads(b)["order_id"] for b in back) == sorted([pending, wrapped])
    assert aws.depth(aws.dlq_url)[0] == 4

    # AND paying what came back charges each order once, the already paid one is not charged again
    for body in back:
        worker_lambda.handler(sqs_event(body), lambda_context)
    assert {aws.order(i)["status"] for i in (pending, paid, wrapped)} == {"PAID"}
    assert bootstrap.container().processor.charges == 3


def test_redrive_dry_run_changes_nothing(aws, tool, valid_order, lambda_context):
    place(valid_order, lambda_context)
    [m] = aws.queue_messages()
    aws.sqs.send_message(QueueUrl=aws.dlq_url, MessageBody=m["Body"])
    assert tool.redrive(rate=100, limit=10, target="queue", dry_run=True, drop_spent=True)["redriven"] == 1
    assert aws.depth(aws.dlq_url)[0] == 1


def test_missing_resources_are_one_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.delenv("ORDERS_DLQ_URL", raising=False)
    monkeypatch.setenv("ORDERS_TABLE_NAME", "orders")
    assert main(["show"]) == 2
    assert capsys.readouterr().err.strip() == "error: --dlq-url not given (nor in the environment)"


def test_redrive_reads_the_whole_dlq_with_poison_first(aws, tool, valid_order, lambda_context):
    # GIVEN 10 poison messages, then 15 orders that can succeed: more than one receive returns
    pending = [place(valid_order, lambda_context) for _ in range(15)]
    bodies = []
    while got := aws.sqs.receive_message(QueueUrl=aws.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600).get(
        "Messages"
    ):
        bodies += [m["Body"] for m in got]
    assert len(bodies) == 15
    aws.sqs.purge_queue(QueueUrl=aws.queue_url)
    for n in range(10):
        aws.sqs.send_message(QueueUrl=aws.dlq_url, MessageBody=f"poison {n}")
    for body in bodies:
        aws.sqs.send_message(QueueUrl=aws.dlq_url, MessageBody=body)
    # WHEN the operator looks, then redrives
    counts = tool.show()
    done = tool.redrive(rate=1000, limit=100, target="queue", dry_run=False, drop_spent=False)
    # THEN every message was read once, all 15 went back, and the poison is all still there and visible
    assert sum(counts.values()) == 25 and counts[CAN_SUCCEED] == 15
    assert done["redriven"] == 15
    back = []
    while got := aws.sqs.receive_message(QueueUrl=aws.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600).get(
        "Messages"
    ):
        back += [json.loads(m["Body"])["order_id"] for m in got]
    assert sorted(back) == sorted(pending)
    assert aws.depth(aws.dlq_url) == (10, 0)


def test_a_spent_duplicate_gets_its_outcome_published_again(aws, tool, valid_order, lambda_context):
    # GIVEN a paid order whose payment_confirmed never went out, and its order_placed copy in the DLQ
    paid = place(valid_order, lambda_context)
    [m] = aws.queue_messages()
    worker_lambda.handler(sqs_event(m["Body"]), lambda_context)
    aws.sqs.send_message(QueueUrl=aws.dlq_url, MessageBody=m["Body"])
    watcher = aws.sqs.create_queue(QueueName="watcher")["QueueUrl"]
    arn = aws.sqs.get_queue_attributes(QueueUrl=watcher, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # As on AWS, the topic delivers only to a queue whose policy lets it send.
    allow = {
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": aws.topic_arn}},
    }
    aws.sqs.set_queue_attributes(
        QueueUrl=watcher, Attributes={"Policy": json.dumps({"Version": "2012-10-17", "Statement": [allow]})}
    )
    aws.sns.subscribe(TopicArn=aws.topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    # WHEN it is redriven
    done = tool.redrive(rate=100, limit=100, target="queue", dry_run=False, drop_spent=True)
    # THEN the outcome is published again (consumers drop it by seq if they had it) and the copy dropped
    assert done["spent: outcome republished"] == 1 and done["spent duplicates dropped"] == 1
    [event] = [json.loads(x["Body"]) for x in aws.queue_messages(watcher)]
    assert event["event_type"] == "payment_confirmed" and event["order_id"] == paid
    assert aws.depth(aws.dlq_url) == (0, 0)
