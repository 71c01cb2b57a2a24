"""``python -m orders.redrive``: what the DLQ holds, by reason, and a redrive that leaves poison where it is.

  python -m orders.redrive show
  python -m orders.redrive redrive [--rate 5] [--max 1000] [--target queue|topic] [--dry-run]

Resources come from the runtime's environment (``ORDERS_QUEUE_URL``, ``ORDERS_TABLE_NAME``,
``ORDER_EVENTS_TOPIC_ARN``) and ``ORDERS_DLQ_URL`` or ``--dlq-url``. Each message is read
against the order it names: an order still PLACED or PAYING can succeed and is sent back;
one already PAID or PAYMENT_FAILED is a spent duplicate: its outcome event is published again (a crash
between the state write and the publish may have lost it; consumers drop duplicates by ``seq``), and the
message is deleted with ``--drop-spent``;
anything else (not JSON, unknown event type, an order that does not exist, fields that
disagree with the order) is poison and stays. SQS's StartMessageMoveTask moves a whole DLQ
and cannot leave poison behind, so this tool receives, sends back, then deletes: at least
once, which the consumers' idempotency (the order's PAYING step and the processor's key)
makes safe: a redriven order is never charged twice.

The whole DLQ is read: long polls until several come back empty, every message kept hidden until the scan
ends (so one is never read twice, nor missed behind messages already seen), then what stays is released.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from orders.adapters.dynamodb import DynamoOrderRepository
from orders.adapters.sns import SnsEventPublisher
from orders.cli import OneLineParser
from orders.domain.errors import MalformedEventError
from orders.domain.events import EventType, OrderEvent
from orders.domain.models import Order, OrderStatus
from orders.domain.service import check_event_matches, outcome_event

CAN_SUCCEED = "can succeed (order PLACED or PAYING)"
SPENT = "spent duplicate (order already terminal)"


EMPTY_RECEIVES = 3  # consecutive empty long polls that end a scan
SCAN_HIDE_S = 900  # how long a scanned message stays hidden, at most, before the scan releases it


@dataclass(frozen=True)
class Verdict:
    reason: str
    body: str | None  # the event to send back, when it can succeed
    order: Order | None = None  # the terminal order of a spent duplicate

    @property
    def redrivable(self) -> bool:
        return self.reason == CAN_SUCCEED


def unwrap(body: str) -> str:
    """The order event inside a DLQ message: raw, an SNS envelope, or a Lambda on-failure record."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if isinstance(data, dict) and isinstance(data.get("requestPayload"), dict):
        try:
            return str(data["requestPayload"]["Records"][0]["Sns"]["Message"])
        except (KeyError, IndexError, TypeError):
            return body
    return body


def classify(body: str, lookup: Any) -> Verdict:
    """Why a message is in the DLQ. ``lookup(order_id)`` is the stored ``Order`` or None."""
    inner = unwrap(body)
    try:
        event = OrderEvent.from_message(inner)
    except MalformedEventError as exc:
        return Verdict(f"poison: {str(exc).split(':')[0]}", None)
    if event.event_type is not EventType.ORDER_PLACED:
        return Verdict(f"not for the workers: {event.event_type.value}", None)
    order = lookup(event.order_id)
    if order is None:
        return Verdict("poison: order does not exist", None)
    try:
        check_event_matches(event, order)
    except MalformedEventError:
        return Verdict("poison: fields disagree with the order", None)
    if order.status is OrderStatus.REJECTED:
        return Verdict("poison: order was rejected (its client got 5xx)", None)
    if order.status.terminal:
        return Verdict(SPENT, None, order)
    return Verdict(CAN_SUCCEED, inner)


class Redrive:
    def __init__(self, *, sqs: Any, ddb: Any, sns: Any, dlq_url: str, queue_url: str, table: str, topic_arn: str):
        self.sqs, self.ddb, self.sns = sqs, ddb, sns
        self.dlq_url, self.queue_url, self.table, self.topic_arn = dlq_url, queue_url, table, topic_arn
        self._orders = DynamoOrderRepository(table, lambda: ddb)

    def order(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

    def _messages(self) -> Any:
        """Every message in the DLQ once, each hidden until the scan ends; stops after a few empty polls."""
        seen: set[str] = set()
        empty = 0
        while empty < EMPTY_RECEIVES:
            msgs = self.sqs.receive_message(
                QueueUrl=self.dlq_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                VisibilityTimeout=SCAN_HIDE_S,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])
            fresh = [m for m in msgs if m["MessageId"] not in seen]
            empty = 0 if fresh else empty + 1
            for m in fresh:
                seen.add(m["MessageId"])
                yield m

    def _release(self, receipts: list[str]) -> None:
        """Make what the scan leaves in the DLQ visible again, for the next look."""
        for start in range(0, len(receipts), 10):
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.dlq_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": r, "VisibilityTimeout": 0}
                    for n, r in enumerate(receipts[start : start + 10])
                ],
            )

    def show(self) -> Counter[str]:
        """Counts by reason; nothing is changed (every message is visible again when the scan ends)."""
        counts: Counter[str] = Counter()
        keep: list[str] = []
        for m in self._messages():
            counts[classify(m["Body"], self.order).reason] += 1
            keep.append(m["ReceiptHandle"])
        self._release(keep)
        return counts

    def _republish_outcome(self, order: Order) -> None:
        from datetime import UTC, datetime

        event = outcome_event(order, datetime.now(UTC).isoformat(timespec="milliseconds"))
        if event is not None:
            SnsEventPublisher(self.topic_arn, lambda: self.sns).publish(event)

    def redrive(self, *, rate: float, limit: int, target: str, dry_run: bool, drop_spent: bool) -> Counter[str]:
        """Send back what can succeed (at most ``rate`` a second), leave poison, republish the outcome of
        spent duplicates (and drop them with ``drop_spent``)."""
        done: Counter[str] = Counter()
        interval = 1.0 / rate
        keep: list[str] = []
        for m in self._messages():
            verdict = classify(m["Body"], self.order)
            if dry_run:  # count what would happen, change nothing
                keep.append(m["ReceiptHandle"])
            if verdict.redrivable and done["redriven"] < limit:
                if not dry_run:
                    assert verdict.body is not None
                    self._send_back(verdict.body, target)
                    self.sqs.delete_message(QueueUrl=self.dlq_url, ReceiptHandle=m["ReceiptHandle"])
                done["redriven"] += 1
                time.sleep(interval)
                continue
            if verdict.reason == SPENT and verdict.order is not None:
                if not dry_run and self.topic_arn:
                    self._republish_outcome(verdict.order)
                done[
                    "spent: outcome republished" if self.topic_arn else "spent: outcome not republished (no topic)"
                ] += 1
                if drop_spent:
                    if not dry_run:
                        self.sqs.delete_message(QueueUrl=self.dlq_url, ReceiptHandle=m["ReceiptHandle"])
                    done["spent duplicates dropped"] += 1
                    continue
            done[f"left: {verdict.reason}"] += 1
            if not dry_run:
                keep.append(m["ReceiptHandle"])
        self._release(keep)
        return done

    def _send_back(self, body: str, target: str) -> None:
        if target == "topic":
            self.sns.publish(
                TopicArn=self.topic_arn,
                Message=body,
                MessageAttributes={"event_type": {"DataType": "String", "StringValue": EventType.ORDER_PLACED.value}},
            )
        else:
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m orders.redrive", description=__doc__)
    parser.add_argument("command", choices=["show", "redrive"])
    parser.add_argument("--dlq-url", default=os.environ.get("ORDERS_DLQ_URL", ""))
    parser.add_argument("--queue-url", default=os.environ.get("ORDERS_QUEUE_URL", ""))
    parser.add_argument("--table", default=os.environ.get("ORDERS_TABLE_NAME", ""))
    parser.add_argument("--topic-arn", default=os.environ.get("ORDER_EVENTS_TOPIC_ARN", ""))
    parser.add_argument("--target", choices=["queue", "topic"], default="queue", help="topic for lambdaTrigger=sns")
    parser.add_argument("--rate", type=float, default=5.0, help="messages per second sent back (default 5)")
    parser.add_argument("--max", type=int, default=1000, help="send back at most this many")
    parser.add_argument("--drop-spent", action="store_true", help="delete duplicates of orders already terminal")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    needed = {"--dlq-url": args.dlq_url, "--table": args.table}
    if args.command == "redrive":
        needed["--queue-url" if args.target == "queue" else "--topic-arn"] = (
            args.queue_url if args.target == "queue" else args.topic_arn
        )
    missing = [name for name, value in needed.items() if not value]
    if missing:
        print(f"error: {', '.join(missing)} not given (nor in the environment)", file=sys.stderr)
        return 2
    if args.rate <= 0 or args.max < 0:
        print("error: --rate must be > 0 and --max >= 0", file=sys.stderr)
        return 2
    from orders.adapters import aws

    tool = Redrive(
        sqs=aws.client("sqs"),
        ddb=aws.client("dynamodb"),
        sns=aws.client("sns"),
        dlq_url=args.dlq_url,
        queue_url=args.queue_url,
        table=args.table,
        topic_arn=args.topic_arn,
    )
    counts = (
        tool.show()
        if args.command == "show"
        else tool.redrive(
            rate=args.rate, limit=args.max, target=args.target, dry_run=args.dry_run, drop_spent=args.drop_spent
        )
    )
    width = max((len(k) for k in counts), default=0)
    for reason, n in counts.most_common():
        print(f"{reason:<{width}}  {n}")
    if not counts:
        print("the DLQ is empty")
    return 0


if __name__ == "__main__":
    sys.exit(main())
