"""What one order costs the emulator's DynamoDB: the real service's accept and payment against moto, with
and without the fast paths (sandbox/emulator/moto_fixes.py: responses in wire form emitted as they are,
parsed update expressions reused), each in its own process.

The DynamoDB emulator serves one request at a time, so its CPU per order bounds a sale's order rate on
this machine: 1000 / (ms per order) orders/s at best, whatever the workers do. This bench prints that
bound beside the share of the time moto spends serializing responses. The bar: the fast path takes the
serializer's share below 10% (it was about a quarter): a regression to moto's walk shows here.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import sys
import time
from typing import Any

from benchmarks import in_own_processes

ORDERS = 60
CART = {"customer_id": "bench", "items": [{"sku": "SKU-CAP", "qty": 1}], "currency": "USD"}


def measure(fast: bool) -> dict[str, float]:
    """ms per order (accept, then the worker's payment), and the serializer's share of the DynamoDB calls."""
    import boto3
    from moto import mock_aws

    from sandbox.emulator import moto_fixes

    moto_fixes.fix_dynamodb_atomic_requests()
    moto_fixes.fix_dynamodb_transaction_copies()
    if fast:
        moto_fixes.fix_dynamodb_attribute_value_serialization()
        moto_fixes.fix_dynamodb_update_expression_reuse()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        POWERTOOLS_METRICS_DISABLED="true",
    )
    from sandbox.emulator.local_aws import create_order_resources

    with mock_aws():
        sqs, sns, ddb = (boto3.client(s, region_name="us-east-1") for s in ("sqs", "sns", "dynamodb"))  # type: ignore[call-overload]
        res = create_order_resources(sqs, sns, ddb)
        os.environ.update({**res.environment(), "PAYMENT_LATENCY_MS": "1", "PAYMENT_FAILURE_RATE": "0"})
        from orders import bootstrap
        from orders.adapters.memory import InMemoryPublisher

        svc = bootstrap.container().service
        svc.publisher = InMemoryPublisher()  # DynamoDB only: SNS is another emulator process

        def one() -> None:
            svc.accept(svc.price(_cart()))
            svc.process_placed(svc.publisher.events[-1])

        for _ in range(5):
            one()
        started = time.perf_counter()
        for _ in range(ORDERS):
            one()
        ms = 1000 * (time.perf_counter() - started) / ORDERS
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(ORDERS // 3):
            one()
        profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    calls = sum(v[3] for k, v in stats.items() if k[2] == "_make_api_call")
    serialize = sum(v[3] for k, v in stats.items() if k[0].endswith("moto/core/responses.py") and k[2] == "serialized")
    parse = sum(v[3] for k, v in stats.items() if k[0].endswith("parsing/expressions.py") and k[2] == "make")
    copies = sum(v[3] for k, v in stats.items() if k[0].endswith("parsing/validators.py") and k[2] == "__init__")
    share = (lambda x: x / calls) if calls else (lambda x: 0.0)
    return {"ms_per_order": ms, "serialize_share": share(serialize), "parse_share": share(parse + copies)}


def _cart() -> object:
    from orders.domain.models import parse_order_request

    return parse_order_request(CART)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in ("--fast", "--moto"):
        print(json.dumps(measure(sys.argv[1] == "--fast")))
        return 0
    got = in_own_processes(
        "benchmarks.emulator_order_cost", (("moto as released", "--moto"), ("with the fast paths", "--fast"))
    )
    if got is None:
        return 1
    rows: dict[str, Any] = dict(got)
    print("One order's DynamoDB calls (accept + payment, the real service, moto in process)")
    for label, r in rows.items():
        bound = 1000 / r["ms_per_order"]
        print(
            f"  {label:<20} {r['ms_per_order']:7.1f} ms per order (at most {bound:5.1f} orders/s on one core), "
            f"serializing {r['serialize_share']:.0%}, parsing and copying updates {r['parse_share']:.0%}"
        )
    share = rows["with the fast paths"]["serialize_share"]
    met = share < 0.10
    verdict = "met" if met else "MISSED"
    print(f"  bar: with the fast path, serializing is {share:.0%} of the calls (target < 10%): {verdict}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
