"""The reconciler: in both computes, every minute, reading stuck orders through the sparse index only."""

import json

import pytest

from orders.adapters.dynamodb import PENDING_INDEX, PENDING_KEY
from tests.infra.conftest import function_by_handler, only, policy_actions, resources

HANDLER = "orders.entrypoints.reconciler.handler"


def test_the_orders_table_has_the_sparse_pending_index_the_runtime_queries(variant):
    table = only(variant("lambda-sqs").data_json, "AWS::DynamoDB::Table", "TablesOrders")
    [index] = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == PENDING_INDEX
    assert [k["AttributeName"] for k in index["KeySchema"]] == [PENDING_KEY, "updated_at"]
    assert index["Projection"]["ProjectionType"] == "ALL"


@pytest.mark.parametrize("name", ["lambda-sqs", "lambda-sns", "ecs"])
def test_every_compute_runs_the_reconciler_every_minute_with_least_privilege(variant, name):
    t = variant(name).service_json
    fn = function_by_handler(t, HANDLER)
    assert fn["Environment"]["Variables"]["RECONCILE_AFTER_S"] == "900"
    schedule = only(t, "AWS::Scheduler::Schedule")
    assert schedule["ScheduleExpression"] == "rate(1 minute)" and schedule["State"] == "ENABLED"
    assert schedule["Target"]["RetryPolicy"]["MaximumRetryAttempts"] == 0
    [(logical_id, _)] = [
        (k, v) for k, v in resources(t, "AWS::Lambda::Function").items() if v["Properties"]["Handler"] == HANDLER
    ]
    assert logical_id in json.dumps(schedule["Target"]["Arn"])
    role = json.dumps(fn["Role"])
    assert policy_actions(t, role.split('"')[3]) >= {"dynamodb:Query", "dynamodb:UpdateItem", "sns:Publish"}
    assert "dynamodb:Scan" not in policy_actions(t, role.split('"')[3])
    # The grant reaches the index: an imported table grants its indexes only when told of them.
    resources_granted = json.dumps(
        [p["Properties"]["PolicyDocument"] for p in resources(t, "AWS::IAM::Policy").values()]
    )
    assert f"/index/{PENDING_INDEX}" in resources_granted or "/index/*" in resources_granted
    alarm = only(t, "AWS::CloudWatch::Alarm", "ReconcilerStuckOrders")
    assert alarm["MetricName"] == "StuckOrdersFound" and alarm["Threshold"] == 1
