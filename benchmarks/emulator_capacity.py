"""What a sale asks of the emulator, against what the emulator can serve on this machine.

1. Capacity: one emulator process (the sandbox's, with its fixes), eight client threads, three seconds per
   operation the hot path uses most; requests/s per operation. DynamoDB serves one request at a time (its
   atomicity fix), so its capacity is that of one core whatever the threads.
2. Cost: a small sale of each variant end to end (``python -m sandbox sale``, 5 users, 10 s per checkout
   path); its report counts every request the emulator served from the async sale's start to the drain.
3. Demand: the source's flash sale (47 orders/s accepted) times each variant's requests per order, as a
   share of each emulator process's capacity for that mix. Above 100%, that sale cannot run here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SOURCE_RATE = 47.0  # orders/s: the low end of the source's flash-sale demand
THREADS, SECONDS = 8, 3.0
DYNAMODB_PROCESS = ("dynamodb",)  # the sandbox runs DynamoDB's data plane in its own emulator process


def _rate(call: Any) -> float:
    done, stop = [0] * THREADS, time.monotonic() + SECONDS

    def work(i: int) -> None:
        while time.monotonic() < stop:
            call(i)
            done[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - started)


def capacity() -> dict[str, float]:
    """requests/s per operation against one emulator process on loopback."""
    import boto3
    from botocore.config import Config

    from benchmarks.sqs_emulator import start_emulator

    proc, endpoint = start_emulator(patched=True)
    try:
        kw: dict[str, Any] = {
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "bench",
            "aws_secret_access_key": "bench",
            "config": Config(max_pool_connections=THREADS * 2),
        }
        ddb, sqs, sns = (boto3.client(s, **kw) for s in ("dynamodb", "sqs", "sns"))  # type: ignore[call-overload]
        ddb.create_table(
            TableName="orders",
            KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        log = {"L": [{"M": {"seq": {"N": str(i)}, "status": {"S": "PAYING"}}} for i in range(3)]}
        for i in range(THREADS):
            ddb.put_item(TableName="orders", Item={"order_id": {"S": f"o{i}"}, "seq": {"N": "3"}, "log": log})
        queue = sqs.create_queue(QueueName="bench")["QueueUrl"]
        topic = sns.create_topic(Name="bench")["TopicArn"]
        key = lambda i: {"order_id": {"S": f"o{i}"}}  # noqa: E731
        return {
            "dynamodb:GetItem": _rate(lambda i: ddb.get_item(TableName="orders", Key=key(i), ConsistentRead=True)),
            "dynamodb:UpdateItem": _rate(
                lambda i: ddb.update_item(
                    TableName="orders",
                    Key=key(i),
                    UpdateExpression="SET #s = :s, seq = seq + :one",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":s": {"S": "PAID"}, ":one": {"N": "1"}},
                    ReturnValues="ALL_NEW",
                )
            ),
            "sqs:SendMessage": _rate(lambda i: sqs.send_message(QueueUrl=queue, MessageBody="x" * 300)),
            "sns:Publish": _rate(lambda i: sns.publish(TopicArn=topic, Message="x" * 300)),
        }
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=30)


def cost(variant: str) -> dict[str, Any]:
    """The emulator block of a small sale's summary (a variant as ``make compare`` deploys it)."""
    from sandbox.runs.compare import RUNS

    compute, context = RUNS["lambda-sqs" if variant == "lambda" else variant]
    with tempfile.TemporaryDirectory() as reports:
        cmd = [sys.executable, "-m", "sandbox", "sale", "--compute", compute, "--users", "5", "--duration", "10"]
        cmd += [arg for key, value in context.items() for arg in ("-c", f"{key}={value}")]
        proc = subprocess.run([*cmd, "--reports", reports], cwd=ROOT, capture_output=True, text=True, timeout=900)
        found = sorted(Path(reports).glob("*/summary.json"))
        if proc.returncode not in (0, 1) or not found:  # 1: a bar was missed, which is not this bench's question
            raise RuntimeError(f"{compute} sale failed: {proc.stderr.strip().splitlines()[-3:]}")
        return dict(json.loads(found[-1].read_text())["emulator"])


def demand_share(per_order: dict[str, float], caps: dict[str, float], rate: float) -> dict[str, float]:
    """Each emulator process's busy share at ``rate`` orders/s: the sum over operations of demand / capacity,
    an operation not measured costing as much as its service's measured mean (or the process's)."""
    by_service: dict[str, list[float]] = {}
    for op, cap in caps.items():
        by_service.setdefault(op.split(":")[0], []).append(cap)
    mean = {s: sum(c) / len(c) for s, c in by_service.items()}
    everyone = sum(caps.values()) / len(caps)
    out = {"DynamoDB process": 0.0, "the other process": 0.0}
    for op, n in per_order.items():
        service = op.split(":")[0]
        cap = caps.get(op) or mean.get(service) or everyone
        out["DynamoDB process" if service in DYNAMODB_PROCESS else "the other process"] += rate * n / cap
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.emulator_capacity")
    parser.add_argument(
        "--variants",
        default="ecs,lambda-sqs,lambda-sqs-provisioned,lambda-sns,lambda-mi",
        help="comma-separated, as make compare names them (lambda: lambda-sqs)",
    )
    args = parser.parse_args(argv)
    caps = capacity()
    print(f"Emulator capacity, one process, {THREADS} client threads ({SECONDS:g} s each)")
    for op, rate in caps.items():
        print(f"  {op:<22} {rate:7.0f} requests/s")
    for variant in args.variants.split(","):
        e = cost(variant)
        by = ", ".join(f"{s} {n}" for s, n in e["by_service_per_order"].items())
        print(f"{variant}: {e['per_order']} emulator requests per accepted order ({by}); {e['orders']} orders")
        top = ", ".join(f"{op} {n}" for op, n in list(e["top_per_order"].items())[:6])
        print(f"  most per order: {top}")
        share = demand_share(e["top_per_order"], caps, SOURCE_RATE)
        shares = ", ".join(f"{p} {s:.0%}" for p, s in share.items())
        print(f"  the source's sale ({SOURCE_RATE:g} orders/s) would keep busy: {shares} (over 100%: not here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
