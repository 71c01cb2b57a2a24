"""Locust's JSON statistics, read without importing Locust (its import patches the process with gevent)."""

import sys

from sandbox.runs.load import _entry


def test_percentiles_counts_and_rate_as_locust_computes_them():
    entries = [
        {
            "method": "GET",
            "name": "GET /catalog",
            "num_requests": 1,
            "num_failures": 0,
            "response_times": {"50": 1},
            "start_time": 0,
            "last_request_timestamp": 1,
        },
        {
            "method": "POST",
            "name": "POST /orders",
            "num_requests": 100,
            "num_failures": 3,
            "response_times": {str(ms): 1 for ms in range(10, 1010, 10)},  # 10, 20, ... 1000 ms, one each
            "start_time": 1000.0,
            "last_request_timestamp": 1010.0,
        },
    ]
    e = _entry(entries, "POST")
    assert e is not None and (e.num_requests, e.num_failures) == (100, 3)
    # locust.stats.calculate_response_time_percentile gives 510 and 1000 for these buckets
    assert (e.get_response_time_percentile(0.5), e.get_response_time_percentile(0.99)) == (510.0, 1000.0)
    assert e.total_rps == 10.0
    assert _entry(entries, "PUT") is None
    assert "locust" not in sys.modules  # reading it imported nothing of Locust's
