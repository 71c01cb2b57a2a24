"""What a worker spends on requests besides the payment, predicted before the sale from the emulator's latency.

Every record a worker pays makes the handler's store and topic calls, and every invocation the mapping's
receive and delete; in the sandbox each is a round trip to a one-core emulator, which serves one request at
a time. A batch's records run on threads, but their requests queue at the emulator one after another, so
the invocation lasts the payment plus the sum of its requests' service times. The model (``planner.model
.Timing``) takes that sum from two independent inputs, neither read from the sale it is compared with:

- the requests per record and per invocation, counted from the handler's code (an integration test runs
  the real handler against moto and fails when ``PER_RECORD`` no longer matches it);
- the emulator's latency per request on this machine, timed just before the sale (``measure``): serial round
  trips of the same operations against probe resources in the same emulator processes, removed after.

The sale's own invocations are timed too (``sandbox.emulator.lambda_pool``) and the report sets them
beside this prediction: a worker slower than its requests explain shows there, not hidden in the model.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.emulator.local_aws import allow_topic_to_send

# A paid record: the order's read, the idempotency record (put in progress, update to done), the order's two
# updates (PAYING, then PAID), its events on the topic (payment started, paid). An ECS consumer's slot pays
# the same handler code.
# The processor's ledger claim (a SQLite transaction the simulator commits before its latency) is one too.
PER_RECORD = {
    "dynamodb:GetItem": 1,
    "dynamodb:PutItem": 1,
    "dynamodb:UpdateItem": 3,
    "sns:Publish": 2,
    "ledger:claim": 1,
}
# An invocation: the mapping's (or the async invoker's) receive and delete.
PER_INVOCATION = {"sqs:ReceiveMessage": 1, "sqs:DeleteMessageBatch": 1}
ROUNDS = 8  # serial round trips per operation: about 0.5 s before the sale
DEFAULT_SUBSCRIPTIONS = 2  # the probe topic's queues when no orders topic is given
EVENT_TYPE = "event_type"  # the attribute subscriptions filter on (orders.domain.events.EVENT_TYPE_ATTRIBUTE)
PAYMENT_EVENTS = ("payment_started", "payment_confirmed")


@dataclass(frozen=True)
class Overheads:
    """Seconds a worker spends on requests: per record it pays, per invocation it serves."""

    latency_ms: dict[str, float]  # median round trip per operation, as measured
    record_s: float
    invocation_s: float

    def describe(self) -> dict[str, Any]:
        return {
            "latency_ms": {op: round(ms, 2) for op, ms in self.latency_ms.items()},
            "record_ms": round(self.record_s * 1000, 1),
            "invocation_ms": round(self.invocation_s * 1000, 1),
            "per_record": PER_RECORD,
            "per_invocation": PER_INVOCATION,
        }


def overheads(latency_ms: dict[str, float]) -> Overheads:
    """The model's inputs from measured latencies: the sum over each unit's requests."""

    def cost(mix: dict[str, int]) -> float:
        return sum(n * latency_ms[op] for op, n in mix.items()) / 1000

    return Overheads(latency_ms=dict(latency_ms), record_s=cost(PER_RECORD), invocation_s=cost(PER_INVOCATION))


def _median_ms(call: Callable[[], Any]) -> float:
    call()  # the first round trip opens the connection
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def ledger_claim_ms(directory: Path) -> float:
    """A charge's claim on a probe ledger beside the sale's (same disk, same SQLite settings)."""
    from orders.adapters.ledger import LedgerEntry, SqliteLedger

    path = directory / f"latency-probe-{uuid.uuid4().hex[:8]}.sqlite"
    ledger, n = SqliteLedger(path), iter(range(ROUNDS + 1))
    try:

        def claim() -> None:
            now = time.time()
            key = f"probe-{next(n)}"
            ledger.claim(LedgerEntry(key, key, "1.00", "USD", True, key, None, now, now))

        return _median_ms(claim)
    finally:
        ledger._conn().close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _subscription_attributes(sns: Any, topic_arn: str | None) -> list[dict[str, str]]:
    """The orders topic's queue subscriptions, as the probe topic copies them (filter policy, raw delivery):
    SNS's cost of a publish is in the deliveries its filters let through."""
    if not topic_arn:
        return [{"RawMessageDelivery": "true"}] * DEFAULT_SUBSCRIPTIONS
    out = []
    for sub in sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]:
        if sub.get("Protocol") != "sqs":
            continue
        attrs = sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])["Attributes"]
        keep = ("FilterPolicy", "FilterPolicyScope", "RawMessageDelivery")
        out.append({k: attrs[k] for k in keep if attrs.get(k)})
    return out or [{"RawMessageDelivery": "true"}]


def measure(ddb: Any, sqs: Any, sns: Any, *, ledger_dir: Path, topic_arn: str | None = None) -> Overheads:
    """Time each operation of ``PER_RECORD`` and ``PER_INVOCATION`` against probe resources in the running
    emulators (a table; a topic whose queues are subscribed as the orders topic's are, each queue's policy
    letting the topic deliver; a queue to receive from), then delete them. The items are shaped like an order
    (a status and a short event log) so an update costs what an order's does; the publishes carry the two
    event types a payment publishes, so the filters deliver what they deliver for an order."""
    name = f"sandbox-latency-{uuid.uuid4().hex[:8]}"
    with ExitStack() as cleanup:
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        cleanup.callback(ddb.delete_table, TableName=name)
        topic = sns.create_topic(Name=name)["TopicArn"]
        cleanup.callback(sns.delete_topic, TopicArn=topic)

        def queue(suffix: str) -> tuple[str, str]:
            url = sqs.create_queue(QueueName=f"{name}-{suffix}")["QueueUrl"]
            cleanup.callback(sqs.delete_queue, QueueUrl=url)
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            return url, arn

        for n, attributes in enumerate(_subscription_attributes(sns, topic_arn)):
            url, arn = queue(str(n))
            allow_topic_to_send(sqs, queue_url=url, queue_arn=arn, topic_arn=topic)
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes=attributes)
        log = {"L": [{"M": {"seq": {"N": str(i)}, "status": {"S": "PAYING"}}} for i in range(3)]}
        item = {"pk": {"S": "probe"}, "status": {"S": "PAYING"}, "seq": {"N": "3"}, "log": log}
        key = {"pk": {"S": "probe"}}
        body = "x" * 400  # about an order event's size

        def publish(event_type: str) -> Callable[[], Any]:
            attrs = {EVENT_TYPE: {"DataType": "String", "StringValue": event_type}}
            return lambda: sns.publish(TopicArn=topic, Message=body, MessageAttributes=attrs)

        latency = {
            "dynamodb:PutItem": _median_ms(lambda: ddb.put_item(TableName=name, Item=item)),
            "dynamodb:GetItem": _median_ms(lambda: ddb.get_item(TableName=name, Key=key, ConsistentRead=True)),
            "dynamodb:UpdateItem": _median_ms(
                lambda: ddb.update_item(
                    TableName=name,
                    Key=key,
                    UpdateExpression="SET #s = :s, seq = seq + :one",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":s": {"S": "PAID"}, ":one": {"N": "1"}},
                    ReturnValues="ALL_NEW",
                )
            ),
            # a payment publishes one of each
            "sns:Publish": statistics.fmean(_median_ms(publish(t)) for t in PAYMENT_EVENTS),
        }
        url, _ = queue("receive")
        handles: list[str] = []
        for _ in range(ROUNDS + 1):  # something to receive in every round
            sqs.send_message(QueueUrl=url, MessageBody=body)

        def receive() -> None:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0, VisibilityTimeout=60)
            handles.extend(m["ReceiptHandle"] for m in got.get("Messages", []))

        def delete() -> None:
            if handles:
                sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": "0", "ReceiptHandle": handles.pop()}])

        latency["sqs:ReceiveMessage"] = _median_ms(receive)
        latency["sqs:DeleteMessageBatch"] = _median_ms(delete)
    latency["ledger:claim"] = ledger_claim_ms(ledger_dir)
    return overheads(latency)
