"""The emulator's DynamoDB applies each conditional write atomically, as DynamoDB does (moto alone does not)."""

import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
from moto import mock_aws

from tests.helpers import one_key_table


def test_of_concurrent_conditional_puts_of_one_key_exactly_one_succeeds():
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        one_key_table(ddb, "t", "id")

        def put(args: tuple[int, int]) -> int:
            key, writer = args
            try:
                ddb.put_item(
                    TableName="t",
                    Item={"id": {"S": f"k{key}"}, "writer": {"N": str(writer)}, "pad": {"S": "x" * 2000}},
                    ConditionExpression="attribute_not_exists(id)",
                )
            except ddb.exceptions.ConditionalCheckFailedException:
                return 0
            return 1

        keys, writers = 60, 8
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads often, so a check-then-write race shows every run
        try:
            with ThreadPoolExecutor(writers) as pool:
                wins = list(pool.map(put, [(k, w) for k in range(keys) for w in range(writers)]))
        finally:
            sys.setswitchinterval(interval)
        assert sum(wins) == keys  # one winner per key: the idempotency record, the order, the PAYING step
