"""Regression tests for the deploy review's findings that no deploy rule covers in general."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.infra.conftest import resources

ROOT = Path(__file__).resolve().parents[2]


def _statements(template, role_fragment):
    for policy in resources(template, "AWS::IAM::Policy").values():
        if role_fragment in json.dumps(policy["Properties"]["Roles"]):
            yield from policy["Properties"]["PolicyDocument"]["Statement"]


def test_fis_lists_tasks_on_star_scoped_by_cluster(variant):
    # ListTasks authorizes on container-instance ARNs, which a Fargate cluster has none of: FIS found no targets.
    t = variant("ecs-chaos").service_json
    [stmt] = [s for s in _statements(t, "FaultInjectionRole") if s["Action"] == "ecs:ListTasks"]
    assert stmt["Resource"] == "*"
    assert "ecs:cluster" in stmt["Condition"]["ArnEquals"]
    assert "EcsWorkersCluster" in json.dumps(stmt["Condition"]["ArnEquals"]["ecs:cluster"])


def test_api_role_cannot_delete_orders(variant):
    t = variant("lambda-sqs").service_json
    orders_table = next(
        json.dumps(v)
        for v in (s.get("Resource") for s in _statements(t, "ApiFunction"))
        if "TablesOrders" in json.dumps(v)
    )
    for stmt in _statements(t, "ApiFunction"):
        actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
        if json.dumps(stmt["Resource"]) == orders_table:
            assert "dynamodb:DeleteItem" not in actions


def test_data_stack_names_what_an_operator_reads(variant):
    outputs = variant("lambda-sqs").data_json["Outputs"]
    assert {"OrderEventsTopicArn", "OrdersQueueUrl", "OrdersDlqUrl", "OrdersTableName"} <= set(outputs)


def _make_dry_run(*args: str) -> str:
    proc = subprocess.run(
        ["make", "-n", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    return proc.stdout


def test_make_deploy_passes_compute_only_when_given():
    # A plain `make deploy` must not switch an ECS deployment to Lambda (cdk.json and CDK_ARGS decide).
    plain = [line for line in _make_dry_run("deploy").splitlines() if "cdk deploy" in line or "ops.preflight" in line]
    assert len(plain) == 2 and all("compute=" not in line for line in plain), plain
    given = [line for line in _make_dry_run("deploy", "COMPUTE=ecs").splitlines() if "cdk deploy" in line]
    assert given and all("-c compute=ecs" in line for line in given)
    lines = _make_dry_run("deploy").splitlines()
    preflight = next(n for n, line in enumerate(lines) if "ops.preflight" in line)
    assert preflight < next(n for n, line in enumerate(lines) if "cdk deploy" in line)
