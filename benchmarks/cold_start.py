"""Cold start: a fresh interpreter importing an entry point and handling its first event.

Compared, in the same run and interleaved, with the floor every Python Lambda
using AWS pays: a fresh interpreter doing ``import boto3`` and creating one
client. Bar: at most 1.3x that floor. Calls go to moto server on loopback.
Both are timed from spawn until the code says it is done (a Lambda environment
lives on after its first event, so interpreter teardown is not counted).
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
sys.path.insert(0, str(ROOT / "runtime"))

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

    from sandbox.local_aws import create_order_resources, moto_server

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
        sys.path.insert(0, str(ROOT))
        from orders import bootstrap
        from orders.domain.models import parse_order_request
        from tests.helpers import http_event, sqs_event

        bootstrap.reset()
        service = bootstrap.container().service
        request = parse_order_request(
            {"customer_id": "bench", "items": [{"sku": "SKU-1", "qty": 1, "price": "9.99"}], "currency": "USD"}
        )
        api_event = json.dumps(
            http_event(
                "POST",
                "/orders",
                {"customer_id": "bench", "currency": "USD", "items": [{"sku": "SKU-1", "qty": 1, "price": 9.99}]},
            )
        )
        times: dict[str, list[float]] = {"baseline": [], "worker_lambda": [], "api": []}
        for _ in range(args.rounds):
            while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
                for m in msgs:  # drop what the previous API run accepted
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            order = service.accept(request)
            [msg] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1)["Messages"]
            sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
            assert order.order_id in msg["Body"]
            worker_event = json.dumps(sqs_event(msg["Body"]))
            times["baseline"].append(_run(BASELINE, env))
            times["worker_lambda"].append(_run(WORKER, env, worker_event))
            times["api"].append(_run(API, env, api_event))

    floor = statistics.median(times["baseline"])
    print(f"\nCold start (median of {args.rounds} fresh interpreters, handler includes its AWS calls to moto)")
    print(f"{'case':<44} {'median ms':>10} {'x floor':>8}  verdict")
    print(f"{'floor: import boto3 + one client':<44} {floor * 1000:>10.0f} {1.0:>8.2f}")
    failures = 0
    for name, label in (
        ("worker_lambda", "worker_lambda: import + first SQS batch"),
        ("api", "api: import + first POST /orders"),
    ):
        med = statistics.median(times[name])
        ratio = med / floor
        failures += ratio > 1.3
        print(f"{label:<44} {med * 1000:>10.0f} {ratio:>8.2f}  {'ok' if ratio <= 1.3 else 'ABOVE 1.3x'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
