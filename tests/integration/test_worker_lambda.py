import json

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from orders import bootstrap
from orders.entrypoints import api, worker_lambda
from tests.helpers import http_event, sns_event, sqs_event


def place(valid_order, ctx, **overrides) -> tuple[str, str]:
    resp = api.handler(http_event("POST", "/orders", {**valid_order, **overrides}), ctx)
    order_id = json.loads(resp["body"])["order_id"]
    return order_id


def bodies(aws) -> list[str]:
    return [m["Body"] for m in aws.queue_messages()]


def test_sqs_batch_pays_orders_and_reports_only_malformed_records(aws, valid_order, lambda_context):
    ids = [place(valid_order, lambda_context) for _ in range(3)]
    good = bodies(aws)
    event = sqs_event(good[0], "{garbage", good[1], '{"event_type":"order_placed"}', good[2])
    result = worker_lambda.handler(event, lambda_context)
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == ["msg-1", "msg-3"]
    assert {aws.order(i)["status"] for i in ids} == {"PAID"}


def test_duplicate_sqs_delivery_charges_once(aws, valid_order, lambda_context):
    order_id = place(valid_order, lambda_context)
    [body] = bodies(aws)
    # Both copies in one batch are paid at the same time: one charges, the other finds the payment
    # in progress and is reported as a batch item failure, to be retried.
    result = worker_lambda.handler(sqs_event(body, body), lambda_context)
    assert len(result["batchItemFailures"]) <= 1
    assert worker_lambda.handler(sqs_event(body), lambda_context)["batchItemFailures"] == []
    assert bootstrap.container().processor.charges == 1
    assert aws.order(order_id)["status"] == "PAID"


def test_transient_failure_is_a_batch_item_failure_then_succeeds(aws, valid_order, lambda_context):
    order_id = place(valid_order, lambda_context)
    [body] = bodies(aws)
    bootstrap.container().processor.failure_rate = 1.0
    # A whole batch failing is a function error (the whole batch is retried, and alarms see it).
    with pytest.raises(BatchProcessingError):
        worker_lambda.handler(sqs_event(body), lambda_context)
    # Mixed with a good record, only the failed one is reported.
    result = worker_lambda.handler(
        sqs_event(body, '{"event_type":"payment_confirmed","order_id":"x","order":{}}'), lambda_context
    )
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == ["msg-0"]
    assert aws.order(order_id)["status"] == "PAYING"  # the attempt is recorded; no charge was made
    bootstrap.container().processor.failure_rate = 0.0
    assert worker_lambda.handler(sqs_event(body), lambda_context)["batchItemFailures"] == []
    assert aws.order(order_id)["status"] == "PAID"


def test_sns_event_is_processed_and_failure_raises_for_async_retry(aws, valid_order, lambda_context):
    order_id = place(valid_order, lambda_context)
    [body] = bodies(aws)
    assert worker_lambda.handler(sns_event(body), lambda_context) == {"processed": 1}
    assert aws.order(order_id)["status"] == "PAID"
    with pytest.raises(Exception, match="not JSON"):
        worker_lambda.handler(sns_event("{garbage"), lambda_context)


def test_declined_card_is_terminal_not_retried(aws, valid_order, lambda_context):
    order_id = place(valid_order, lambda_context, payment_token="tok_declined")
    [body] = bodies(aws)
    assert worker_lambda.handler(sqs_event(body), lambda_context)["batchItemFailures"] == []
    order = aws.order(order_id)
    assert order["status"] == "PAYMENT_FAILED" and order["failure_reason"] == "card_declined"


def test_a_batch_is_paid_concurrently_up_to_the_payment_slots(aws, valid_order, lambda_context, monkeypatch):
    # GIVEN five slots and a batch of eight orders
    monkeypatch.setenv("PAYMENT_LATENCY_MS", "200")
    bootstrap.reset()
    worker_lambda._pool = None
    for _ in range(8):
        place(valid_order, lambda_context)
    # WHEN one invocation handles the batch
    result = worker_lambda.handler(sqs_event(*bodies(aws)), lambda_context)
    # THEN every order is paid, with five payments in flight at once (not one after another)
    processor = bootstrap.container().processor
    assert result["batchItemFailures"] == []
    assert processor.charges == 8 and processor.peak_in_use == 5


def test_a_paid_record_makes_the_requests_the_sandbox_model_counts(aws, valid_order, lambda_context, monkeypatch):
    """GIVEN 3 placed orders WHEN the worker pays them in one batch THEN it makes per record exactly the
    requests ``sandbox.stack.latency.PER_RECORD`` charges the model for: a handler that adds a call fails here
    (the sandbox's prediction would then be short of what each invoke costs)."""
    import threading
    from collections import Counter

    import botocore.client

    from sandbox.stack.latency import PER_RECORD

    for _ in range(3):
        place(valid_order, lambda_context)
    event = sqs_event(*bodies(aws))
    seen: Counter[str] = Counter()
    lock = threading.Lock()  # the batch's records are paid on threads
    call = botocore.client.BaseClient._make_api_call

    def counted(self, operation, params):
        with lock:
            seen[f"{self.meta.service_model.service_name}:{operation}"] += 1
        return call(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counted)
    ledger = bootstrap.container().processor.ledger
    claim = ledger.claim

    def claimed(entry):
        with lock:
            seen["ledger:claim"] += 1
        return claim(entry)

    monkeypatch.setattr(ledger, "claim", claimed)
    assert worker_lambda.handler(event, lambda_context)["batchItemFailures"] == []
    assert {op: n / 3 for op, n in seen.items()} == PER_RECORD
