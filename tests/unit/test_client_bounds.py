"""Every AWS call the API makes ends inside the API function's time: 5xx only when known not charged."""

from orders.adapters.aws import bounds

API_FUNCTION_TIMEOUT_S = 29  # constructs_lib/order_api.py; HTTP API's integration limit is 30 s
ACCEPT_CALLS = 3  # create, publish, and the tombstone after a failed publish
# botocore standard retries (retries/standard.py): before retry i, rand(0, 1) * min(base * 2**i, 20 s), base 1 s
# for throttling (the worst case), so at most 1 s before the second attempt.
STANDARD_MODE_MAX_BACKOFF_S = 1


def worst_call_s(service: str) -> float:
    b = bounds(service)
    attempts = b["retries"]["max_attempts"]
    return attempts * (b["connect_timeout"] + b["read_timeout"]) + (attempts - 1) * STANDARD_MODE_MAX_BACKOFF_S


def test_an_accept_whose_every_call_hangs_still_answers_before_the_function_times_out():
    worst = worst_call_s("dynamodb") * 2 + worst_call_s("sns")
    assert worst <= API_FUNCTION_TIMEOUT_S
    assert ACCEPT_CALLS * max(worst_call_s("dynamodb"), worst_call_s("sns")) <= API_FUNCTION_TIMEOUT_S, worst


def test_sqs_reads_outlast_a_long_poll():
    assert bounds("sqs")["read_timeout"] > 20
