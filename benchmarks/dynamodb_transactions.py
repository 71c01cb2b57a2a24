"""A checkout's transaction (the order's put beside its stock decrement) against moto's DynamoDB as the
orders table grows, with and without the sandbox's fix (sandbox/emulator/moto_fixes.py).

moto copies each whole table a transaction touches, so without the fix a checkout costs more the more has
been sold. Each variant runs in its own process (the fix patches moto for the process). The bar: with the
fix, a checkout at 3,000 orders costs at most 1.5x one at an empty table.
"""

from __future__ import annotations

import json
import sys
import time

from benchmarks import in_own_processes

SIZES = (0, 1000, 3000)
TIMED = 100


def measure(fixed: bool) -> dict[int, float]:
    """ms per checkout transaction at each table size (in this process)."""
    import boto3
    from moto import mock_aws

    if fixed:
        from sandbox.emulator.moto_fixes import fix_dynamodb_transaction_copies

        fix_dynamodb_transaction_copies()
    out: dict[int, float] = {}
    with mock_aws():
        c = boto3.client("dynamodb", region_name="us-east-1")
        for name, key in (("orders", "order_id"), ("catalog", "sku")):
            c.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        c.put_item(TableName="catalog", Item={"sku": {"S": "SKU-A"}, "left": {"N": "10000000"}})

        def checkout(order_id: str) -> None:
            c.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": "orders",
                            "Item": {"order_id": {"S": order_id}, "items": {"S": "x" * 500}},
                            "ConditionExpression": "attribute_not_exists(order_id)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": "catalog",
                            "Key": {"sku": {"S": "SKU-A"}},
                            "UpdateExpression": "SET #l = #l - :q",
                            "ConditionExpression": "#l >= :q",
                            "ExpressionAttributeNames": {"#l": "left"},
                            "ExpressionAttributeValues": {":q": {"N": "1"}},
                        }
                    },
                ]
            )

        made = 0
        for size in SIZES:
            while made < size:
                checkout(f"fill-{made}")
                made += 1
            started = time.perf_counter()
            for n in range(TIMED):
                checkout(f"timed-{size}-{n}")
            made += TIMED
            out[size] = 1000 * (time.perf_counter() - started) / TIMED
    return out


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in ("--fixed", "--moto"):
        print(json.dumps(measure(sys.argv[1] == "--fixed")))
        return 0
    got = in_own_processes(
        "benchmarks.dynamodb_transactions", (("moto as released", "--moto"), ("with the sandbox's fix", "--fixed"))
    )
    if got is None:
        return 1
    rows = {label: {int(k): v for k, v in figures.items()} for label, figures in got.items()}  # type: ignore[attr-defined]
    print("DynamoDB checkout transaction (order put + stock decrement), ms per call, by orders already in the table")
    print(f"  {'':<24}" + "".join(f"{size:>10,}" for size in SIZES))
    for label, ms in rows.items():
        print(f"  {label:<24}" + "".join(f"{ms[size]:>10.1f}" for size in SIZES))
    fixed = rows["with the sandbox's fix"]
    ratio = fixed[SIZES[-1]] / fixed[SIZES[0]]
    met = ratio <= 1.5
    verdict, largest = ("met" if met else "MISSED"), f"{SIZES[-1]:,}"
    print(f"  bar: with the fix, {largest} orders cost {ratio:.2f}x an empty table (target <= 1.5x): {verdict}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
