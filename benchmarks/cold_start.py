"""Cold start of each Lambda entry point, two ratios, every case interleaved in one run.

* INIT (what Lambda bills as INIT): a fresh interpreter importing the handler
  module, against the floor every Python Lambda using AWS pays (``import boto3``
  and one client). Bar: at most 1.3x.
* First event: a fresh interpreter importing the handler and handling its first
  event, against a fresh interpreter that imports boto3, creates the same clients
  and makes the same AWS calls, by hand, against the same endpoint. Bar: at most
  1.3x. What is left between the two is Powertools, the domain and the handler.

Calls go to moto server on loopback. Each is timed from spawn until the code
says it is done (a Lambda environment lives on after its first event, so
interpreter teardown is not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BASELINE = "import boto3; boto3.client('sqs')\nprint('ready', flush=True)"

_FIRST_EVENT = """
import json, sys
from orders.entrypoints import {module}
class Ctx:
    function_name = "bench"; memory_limit_in_mb = 512; aws_request_id = "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    def get_remaining_time_in_millis(self): return 30000
result = {module}.handler(json.loads(sys.stdin.read()), Ctx())
assert {check}, result
print("ready", flush=True)
"""
WORKER = _FIRST_EVENT.format(module="worker_lambda", check='result == {"batchItemFailures": []}')
API = _FIRST_EVENT.format(module="api", check='result["statusCode"] == 202')
_IMPORT = "from orders.entrypoints import {module}\nprint('ready', flush=True)"

# The same clients and AWS calls as the handlers' first events, written with boto3 alone.
WORKER_RAW = """
import json, os, sys, time, boto3
event = json.loads(sys.stdin.read())
body = json.loads(event["Records"][0]["body"])
key = {"order_id": {"S": body["order_id"]}}
orders, idem = os.environ["ORDERS_TABLE_NAME"], os.environ["IDEMPOTENCY_TABLE_NAME"]
ddb, sns = boto3.client("dynamodb"), boto3.client("sns")
names = {"#s": "status"}
ddb.get_item(TableName=orders, Key=key, ConsistentRead=True)
ddb.update_item(TableName=orders, Key=key, UpdateExpression="SET #s = :t", ConditionExpression="#s = :e",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":t": {"S": "PAYING"}, ":e": {"S": "PLACED"}})
idem_key = {"id": {"S": "raw#" + body["order_id"]}}
expires = {"N": str(int(time.time()) + 3600)}
ddb.put_item(TableName=idem, Item={**idem_key, "status": {"S": "INPROGRESS"}, "expiration": expires},
             ConditionExpression="attribute_not_exists(id)")
ddb.update_item(TableName=idem, Key=idem_key, UpdateExpression="SET #s = :c", ExpressionAttributeNames=names,
                ExpressionAttributeValues={":c": {"S": "COMPLETED"}})
ddb.update_item(TableName=orders, Key=key, UpdateExpression="SET #s = :t", ConditionExpression="#s = :e",
                ExpressionAttributeNames=names, ExpressionAttributeValues={":t": {"S": "PAID"}, ":e": {"S": "PAYING"}},
                ReturnValues="ALL_NEW")
sns.publish(TopicArn=os.environ["ORDER_EVENTS_TOPIC_ARN"], Message=json.dumps(body),
            MessageAttributes={"event_type": {"DataType": "String", "StringValue": "payment_confirmed"}})
print("ready", flush=True)
"""
API_RAW = """
import json, os, sys, uuid, boto3
event = json.loads(sys.stdin.read())
order = {**json.loads(event["body"]), "order_id": str(uuid.uuid4()), "status": "PLACED"}
ddb, sns = boto3.client("dynamodb"), boto3.client("sns")
item = {"order_id": {"S": order["order_id"]}, "status": {"S": "PLACED"}, "body": {"S": json.dumps(order)}}
ddb.put_item(TableName=os.environ["ORDERS_TABLE_NAME"], Item=item, ConditionExpression="attribute_not_exists(order_id)")
sns.publish(TopicArn=os.environ["ORDER_EVENTS_TOPIC_ARN"], Message=json.dumps(order),
            MessageAttributes={"event_type": {"DataType": "String", "StringValue": "order_placed"}})
print(json.dumps({"statusCode": 202}), flush=True)
print("ready", flush=True)
"""


def _run(code: str, env: dict[str, str], stdin: str = "") -> float:
    """Spawn to "ready" (handler returned): a Lambda environment is not torn down after its first event."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(stdin)
    proc.stdin.close()
    line = ""
    while line.strip() != "ready":  # the handler's own output (logs, EMF metrics) may come first
        line = proc.stdout.readline()
        if not line:
            break
    elapsed = time.perf_counter() - started
    proc.stdout.read()
    err = proc.stderr.read() if proc.stderr else ""
    proc.wait()
    if proc.returncode != 0 or not line.strip().endswith("ready"):
        raise RuntimeError(err[-2000:])
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)

    import boto3

    from sandbox.emulator.local_aws import create_order_resources, moto_server

    creds = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    with moto_server() as endpoint:
        kw = {
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "bench",
            "aws_secret_access_key": "bench",
        }
        sqs, ddb, sns = (boto3.client(s, **kw) for s in ("sqs", "dynamodb", "sns"))
        res = create_order_resources(sqs, sns, ddb)
        url = res.queue_url
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT / "runtime"),
            "AWS_ENDPOINT_URL": endpoint,
            **creds,
            **res.environment(),
            "PAYMENT_LATENCY_MS": "0",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "AWS_LAMBDA_FUNCTION_NAME": "bench",
        }
        os.environ.update({k: v for k, v in env.items() if k != "PATH" and k != "PYTHONPATH"})
        from orders import bootstrap
        from orders.domain.models import parse_order_request
        from tests.helpers import http_event, sqs_event

        bootstrap.reset()
        service = bootstrap.container().service
        request = service.price(parse_order_request({"customer_id": "bench", "items": [{"sku": "SKU-1", "qty": 1}]}))
        api_event = json.dumps(
            http_event(
                "POST",
                "/orders",
                {"customer_id": "bench", "currency": "USD", "items": [{"sku": "SKU-1", "qty": 1, "price": 9.99}]},
            )
        )
        times: dict[str, list[float]] = {
            k: [] for k in ("baseline", "init_worker", "init_api", "worker_lambda", "worker_raw", "api", "api_raw")
        }

        def next_message() -> str:
            order = service.accept(request)
            [msg] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1)["Messages"]
            sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
            assert order.order_id in msg["Body"]
            return str(msg["Body"])

        for _ in range(args.rounds):
            while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
                for m in msgs:  # drop what the previous API run accepted
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            times["baseline"].append(_run(BASELINE, env))
            times["init_worker"].append(_run(_IMPORT.format(module="worker_lambda"), env))
            times["init_api"].append(_run(_IMPORT.format(module="api"), env))
            times["worker_lambda"].append(_run(WORKER, env, json.dumps(sqs_event(next_message()))))
            times["worker_raw"].append(_run(WORKER_RAW, env, json.dumps(sqs_event(next_message()))))
            times["api"].append(_run(API, env, api_event))
            times["api_raw"].append(_run(API_RAW, env, api_event))

    return _report(times, args.rounds)


def _report(times: dict[str, list[float]], rounds: int) -> int:
    """Medians beside their floors; exit 1 if any case is above 1.3x its floor."""
    med = {name: statistics.median(values) * 1000 for name, values in times.items()}
    print(f"\nCold start (median of {rounds} fresh interpreters each, interleaved; calls go to moto)")
    print(f"{'case':<52} {'median ms':>10} {'vs':>28} {'ratio':>6}  verdict")
    failures = 0
    for label, case, floor_label, floor in (
        ("INIT: import worker_lambda", "init_worker", "import boto3 + one client", "baseline"),
        ("INIT: import api", "init_api", "import boto3 + one client", "baseline"),
        ("first event: worker_lambda, one SQS record", "worker_lambda", "boto3 + same clients and calls", "worker_raw"),
        ("first event: api, POST /orders", "api", "boto3 + same clients and calls", "api_raw"),
    ):
        ratio = med[case] / med[floor]
        failures += ratio > 1.3
        print(
            f"{label:<52} {med[case]:>10.0f} {floor_label + f' {med[floor]:.0f} ms':>28} {ratio:>6.2f}  "
            f"{'ok' if ratio <= 1.3 else 'ABOVE 1.3x'}"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
