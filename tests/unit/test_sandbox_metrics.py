"""The sandbox's figures from its records: pure functions, hand-computed answers."""

import json

import pytest

from sandbox.results import metrics


def rows(*points):
    return [{"t": t, "accepted": 100.0, "visible": v, "inflight": 0.0, "dlq": 0.0, "workers": w} for t, v, w in points]


def test_worker_efficiency_is_paid_over_what_running_workers_allow():
    # GIVEN 2 workers of 5/s each for 10 s, and 80 orders finished in that time
    samples = rows((0, 100, 2), (5, 60, 2), (10, 20, 2))
    eff = metrics.worker_efficiency(samples, start=0, end=10, worker_capacity=5)
    # THEN 80 / (2 x 5 x 10) = 0.8
    assert eff is not None and eff["ratio"] == pytest.approx(0.8)
    assert eff["paid_per_s"] == pytest.approx(8) and eff["allowed_per_s"] == pytest.approx(10)


def test_a_worker_twice_too_slow_halves_the_efficiency():
    fast = metrics.worker_efficiency(rows((0, 100, 2), (10, 0, 2)), start=0, end=10, worker_capacity=5)
    slow = metrics.worker_efficiency(rows((0, 100, 2), (10, 50, 2)), start=0, end=10, worker_capacity=5)
    assert fast and slow and slow["ratio"] == pytest.approx(fast["ratio"] / 2)


def test_dlq_bodies_of_any_shape_never_break_the_accounting():
    event = json.dumps({"event_type": "order_placed", "order_id": "o-1", "order": {}})
    on_failure = json.dumps({"requestPayload": {"Records": [{"Sns": {"Message": event}}]}})
    envelope = json.dumps({"Type": "Notification", "Message": event})
    assert metrics.dlq_order_id(event) == "o-1"
    assert metrics.dlq_order_id(on_failure) == "o-1"
    assert metrics.dlq_order_id(envelope) == "o-1"
    for poison in ("not json", "[]", "{}", '{"order_id": 7}', '{"requestPayload": 1}', "x" * 250_000):
        assert metrics.dlq_order_id(poison) is None


def test_forged_timestamps_are_left_out_not_allowed_to_bend_rates():
    stamps = ["2026-11-29T06:00:00.000+00:00", "2026-11-29T06:00:10.000+00:00", "0001-13-99", "", "nan"]
    assert metrics.rate_between(stamps) == pytest.approx(0.1)  # 2 good stamps, 1 interval of 10 s
    assert metrics.seconds("not a time") is None


def test_off_by_is_relative_and_undefined_without_a_model():
    assert metrics.off_by(115, 100) == pytest.approx(0.15)
    assert metrics.off_by(85, 100) == pytest.approx(0.15)
    assert metrics.off_by(5, 0) is None and metrics.off_by(None, 3) is None


def session(order_id, seen, *, reconnected=False, timed_out=False, frames=()):
    return {
        "order_id": order_id,
        "seen": list(seen),
        "reconnected": reconnected,
        "reconnects": int(reconnected),
        "duplicates": 0,
        "resyncs": 0,
        "errors": 0,
        "timed_out": timed_out,
        "frames": list(frames),
    }


def test_a_reconnected_client_missing_one_logged_event_is_counted():
    # GIVEN two orders whose logs end at seq 3, one client that reconnected and never got seq 2
    sessions = [session("a", [1, 3], reconnected=True), session("b", [1, 2, 3])]
    t = metrics.tracking_summary(sessions, {"a": 3, "b": 3})
    assert t["missed_after_reconnect"] == 1 and t["missed"] == 1
    # AND a client that saw everything counts nothing
    assert metrics.tracking_summary([session("a", [1, 2, 3], reconnected=True)], {"a": 3})["missed"] == 0


def test_a_client_that_never_got_the_final_event_is_a_miss_unless_it_gave_up_first():
    assert metrics.tracking_summary([session("a", [1, 2], reconnected=True)], {"a": 3})["missed_after_reconnect"] == 1
    gave_up = metrics.tracking_summary([session("a", [1, 2], reconnected=True, timed_out=True)], {"a": 3})
    assert gave_up["missed_after_reconnect"] == 0 and gave_up["timed_out"] == 1


def test_push_latency_counts_live_paid_frames_only():
    frames = [
        {"seq": 3, "status": "PAID", "at": 100.25, "occurred_at": "1970-01-01T00:01:40+00:00", "live": True},
        {"seq": 3, "status": "PAID", "at": 109.0, "occurred_at": "1970-01-01T00:01:40+00:00", "live": False},
        {"seq": 2, "status": "PAYING", "at": 105.0, "occurred_at": "1970-01-01T00:01:40+00:00", "live": True},
    ]
    t = metrics.tracking_summary([session("a", [1, 2, 3], frames=frames)], {"a": 3})
    assert t["push_latency_ms"] == {"p50": 250.0, "p99": 250.0, "samples": 1}


def test_a_request_is_counted_by_its_service_and_operation_as_the_sdk_sends_it():
    from sandbox.emulator.request_counts import CountingApp, operation_of, service_of

    signed = "AWS4-HMAC-SHA256 Credential=test/20261202/us-east-1/{}/aws4_request, SignedHeaders=host"
    assert service_of({"HTTP_AUTHORIZATION": signed.format("dynamodb")}) == "dynamodb"
    assert service_of({}) == "unsigned"
    assert operation_of({"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.TransactWriteItems"}, b"") == "TransactWriteItems"
    form = {"CONTENT_TYPE": "application/x-www-form-urlencoded; charset=utf-8"}
    assert operation_of(form, b"Action=Publish&TopicArn=arn") == "Publish"
    rest = {"REQUEST_METHOD": "POST", "PATH_INFO": "/2015-03-31/functions/FlashSale-worker-1/invocations"}
    assert operation_of(rest, b"") == "POST /2015-03-31/functions/*/invocations"

    import io

    seen: list[bytes] = []

    def app(environ, start_response):
        seen.append(environ["wsgi.input"].read())  # moto reads the body the counter already read
        return [b""]

    counting = CountingApp(app)
    body = b"Action=Publish&Message=x"
    counting(
        {
            **form,
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "HTTP_AUTHORIZATION": signed.format("sns"),
        },
        lambda *a: None,
    )
    assert seen == [body] and counting.snapshot() == {"sns": {"Publish": 1}}
