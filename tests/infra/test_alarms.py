"""Every alarm watches a metric something really emits, at a threshold it can reach."""

import pytest

from constructs_lib.order_runtime import ECS_WORKER_SERVICE, LAMBDA_WORKER_SERVICE, METRICS_NAMESPACE, RECORDS_FAILED
from tests.infra.conftest import resources


def alarms(t):
    return {k: a["Properties"] for k, a in resources(t, "AWS::CloudWatch::Alarm").items()}


def alarm(t, fragment):
    [found] = [a for k, a in alarms(t).items() if k.startswith(f"Monitoring{fragment}")]
    return found


@pytest.mark.parametrize(
    ("name", "service"),
    [("lambda-sqs", LAMBDA_WORKER_SERVICE), ("lambda-sns", LAMBDA_WORKER_SERVICE), ("ecs", ECS_WORKER_SERVICE)],
)
def test_worker_errors_alarm_counts_the_records_the_worker_reports_failed(variant, name, service):
    # The worker emits this metric for partial batch failures too, which the function's Errors metric misses.
    a = alarm(variant(name).service_json, "WorkerErrors")
    assert (a["Namespace"], a["MetricName"]) == (METRICS_NAMESPACE, RECORDS_FAILED)
    assert a["Dimensions"] == [{"Name": "service", "Value": service}]
    assert a["Statistic"] == "Sum" and a["Threshold"] == 1


@pytest.mark.parametrize(("name", "cap"), [("lambda-sqs", 50), ("lambda-tuned", 12), ("lambda-sns", 50)])
def test_lambda_saturation_alarm_fires_at_the_concurrency_the_worker_can_reach(variant, name, cap):
    # Throttles never fire while the mapping's maxConcurrency <= reserved: alarm on the cap itself.
    a = alarm(variant(name).service_json, "WorkerSaturation")
    assert a["MetricName"] == "ConcurrentExecutions" and a["Statistic"] == "Maximum"
    assert a["Threshold"] == cap and a["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_ecs_saturation_alarm_fires_at_max_tasks(variant):
    a = alarm(variant("ecs-tuned").service_json, "WorkerSaturation")
    assert a["Threshold"] == 7


@pytest.mark.parametrize("name", ["lambda-sqs", "ecs"])
def test_api_alarms_watch_5xx_and_p99_latency(variant, name):
    t = variant(name).service_json
    errors, latency = alarm(t, "ApiServerErrors"), alarm(t, "ApiLatencyP99")
    assert (errors["Namespace"], errors["MetricName"], errors["Statistic"]) == ("AWS/ApiGateway", "5xx", "Sum")
    assert (latency["MetricName"], latency["ExtendedStatistic"], latency["Threshold"]) == ("Latency", "p99", 1000)
    for a in (errors, latency):
        assert a["Dimensions"][0]["Name"] == "ApiId"
