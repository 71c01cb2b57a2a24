"""The sandbox's API front runs the real handler as Lambda does: one request per environment at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import boto3
import pytest

from sandbox.emulator.local_aws import create_order_resources, moto_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def front(tmp_path):
    with moto_server() as endpoint:
        kw = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        env = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONPATH": f"{ROOT / 'runtime'}{os.pathsep}{ROOT}",
            "PAYMENT_LATENCY_MS": "50",
            # Failed sync payments make the handler log warnings: they must never be read as responses.
            "PAYMENT_FAILURE_RATE": "0.3",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "SANDBOX_API_ENVS": "4",
            "SANDBOX_API_WARM": "4",
            "SANDBOX_LOG_DIR": str(tmp_path),
        }
        session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test")
        res = create_order_resources(*(session.client(s, **kw) for s in ("sqs", "sns", "dynamodb")))
        env.update(res.environment())
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox.emulator.api_front"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(tmp_path / "api.log").open("w"),
            text=True,
        )
        try:
            port = json.loads(proc.stdout.readline())["port"]  # type: ignore[union-attr]
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.stdin.close()  # type: ignore[union-attr]
            proc.wait(timeout=30)


def _request(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_concurrent_requests_with_different_bodies_each_get_their_own(front):
    # GIVEN 40 orders from 40 customers, sent 16 at a time to 4 environments (sync ones hold theirs while paying)
    def place(n: int) -> tuple[str, str | None]:
        sync = n % 4 == 0
        item = {"sku": "SKU-1", "qty": 1 + n % 5, "price": "9.99"}
        body = {"customer_id": f"cust-{n}", "items": [item], "currency": "USD"}
        status, out = _request("POST", front + ("/orders/sync" if sync else "/orders"), body)
        # THEN each request gets its own route's answer: async 202; sync 201, or 202 (pending) when the
        # processor failed and the order went to the workers
        assert status in ((201, 202) if sync else (202,)), (n, status, out)
        return f"cust-{n}", out.get("order_id")

    with ThreadPoolExecutor(16) as pool:
        placed = list(pool.map(place, range(40)))
    # AND every order holds the body its own request sent
    accepted = [(c, o) for c, o in placed if o]
    for customer, order_id in accepted:
        status, order = _request("GET", f"{front}/orders/{order_id}")
        assert status == 200 and order["customer_id"] == customer
        assert order["total"] == str(Decimal("9.99") * (1 + int(customer.removeprefix("cust-")) % 5))
    assert len({order_id for _, order_id in accepted}) == len(accepted) >= 30
