"""ECS variant: backlog-per-task scaling, wake from zero, graceful stop, cost-conscious network."""

import itertools
import json

import pytest

from tests.infra.conftest import PAY_AND_PUBLISH, only, policy_actions, resources


def scaling_policies(t):
    return {
        p["Properties"]["PolicyType"]: p["Properties"]
        for p in resources(t, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    }


@pytest.mark.parametrize(
    ("name", "lo", "hi", "target", "out_cd", "in_cd"),
    [("ecs", 0, 25, 100, 60, 300), ("ecs-tuned", 2, 7, 20, 30, 600)],
)
def test_target_tracking_on_backlog_per_task_follows_context(variant, name, lo, hi, target, out_cd, in_cd):
    t = variant(name).service_json
    scalable = only(t, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert (scalable["MinCapacity"], scalable["MaxCapacity"]) == (lo, hi)
    assert scalable["ScalableDimension"] == "ecs:service:DesiredCount"
    tracking = scaling_policies(t)["TargetTrackingScaling"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == target
    assert (tracking["ScaleOutCooldown"], tracking["ScaleInCooldown"]) == (out_cd, in_cd)
    queries = {q["Id"]: q for q in tracking["CustomizedMetricSpecification"]["Metrics"]}
    assert set(queries) == {"visible", "inflight", "running", "backlog_per_task"}
    assert queries["visible"]["MetricStat"]["Metric"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert queries["inflight"]["MetricStat"]["Metric"]["MetricName"] == "ApproximateNumberOfMessagesNotVisible"
    assert queries["running"]["MetricStat"]["Metric"]["MetricName"] == "RunningTaskCount"
    expr = queries["backlog_per_task"]
    # A missing or zero running count yields no datapoint (no action), never backlog / 1 (a jump to maxTasks).
    assert expr["ReturnData"] is True and expr["Expression"] == "(visible + inflight) / running"
    assert [q["Id"] for q in queries.values() if q.get("ReturnData")] == ["backlog_per_task"]


def wake_of(t):
    step = scaling_policies(t)["StepScaling"]["StepScalingPolicyConfiguration"]
    [alarm] = [
        a["Properties"]
        for a in resources(t, "AWS::CloudWatch::Alarm").values()
        if "FILL(running, 0) == 0" in json.dumps(a["Properties"].get("Metrics", []))
    ]
    return step, alarm


def test_wake_adds_the_task_count_the_backlog_implies(variant):
    """ecs-tuned: tasks 2..7, 20 per task, wake at 20 visible; bounds are relative to the threshold."""
    # GIVEN the tuned ECS variant
    # WHEN the service is idle and v messages are visible
    # THEN the wake adds ceil(v / 20) tasks within 2..7 (from zero: sets it); it never lowers capacity
    step, alarm = wake_of(variant("ecs-tuned").service_json)
    assert step["AdjustmentType"] == "ChangeInCapacity"
    assert all(a["ScalingAdjustment"] > 0 for a in step["StepAdjustments"])
    assert alarm["Threshold"] == 20 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"]
    expression = next(m["Expression"] for m in alarm["Metrics"] if "Expression" in m)
    assert expression == "IF(FILL(running, 0) == 0, visible, 0)"
    intervals = [
        (a.get("MetricIntervalLowerBound"), a.get("MetricIntervalUpperBound"), a["ScalingAdjustment"])
        for a in step["StepAdjustments"]
    ]
    assert sorted(intervals, key=lambda i: i[0]) == [
        (0, 21, 2),
        (21, 41, 3),
        (41, 61, 4),
        (61, 81, 5),
        (81, 101, 6),
        (101, None, 7),
    ]


def test_wake_steps_stay_within_the_quota_and_cover_every_backlog(variant):
    """Default ecs: tasks 0..25 need more counts than the 20 steps a policy may hold."""
    step, alarm = wake_of(variant("ecs").service_json)
    steps = sorted(step["StepAdjustments"], key=lambda a: a["MetricIntervalLowerBound"])
    assert 1 < len(steps) <= 20
    assert steps[0]["MetricIntervalLowerBound"] == 0 and "MetricIntervalUpperBound" not in steps[-1]
    for before, after in itertools.pairwise(steps):
        assert before["MetricIntervalUpperBound"] == after["MetricIntervalLowerBound"]  # no gap, no overlap
        assert before["ScalingAdjustment"] < after["ScalingAdjustment"]
    threshold, target = alarm["Threshold"], 100
    for s in steps[:-1]:
        largest_visible = threshold + s["MetricIntervalUpperBound"] - 1
        assert s["ScalingAdjustment"] * target >= largest_visible  # enough tasks for the backlog it wakes on
    assert (steps[0]["ScalingAdjustment"], steps[-1]["ScalingAdjustment"]) == (1, 25)


@pytest.mark.parametrize(
    ("name", "strategy", "concurrency"),
    [
        (
            "ecs",
            [
                {"CapacityProvider": "FARGATE", "Base": 1, "Weight": 0},
                {"CapacityProvider": "FARGATE_SPOT", "Weight": 1},
            ],
            "10",
        ),
        ("ecs-tuned", [{"CapacityProvider": "FARGATE", "Weight": 1}], "25"),
    ],
)
def test_service_runs_the_worker_entry_point_with_context_settings(variant, name, strategy, concurrency):
    t = variant(name).service_json
    service = only(t, "AWS::ECS::Service")
    # Spot keeps an on-demand base (fargateOnDemandBase=1): a reclaim mid-sale cannot take every worker.
    assert service["CapacityProviderStrategy"] == strategy
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "ENABLED"
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    [container] = only(t, "AWS::ECS::TaskDefinition")["ContainerDefinitions"]
    assert container["Command"] == ["python", "-m", "orders.entrypoints.worker_ecs"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["WORKER_CONCURRENCY"] == concurrency
    assert {"ORDER_EVENTS_TOPIC_ARN", "ORDERS_QUEUE_URL", "ORDERS_TABLE_NAME", "IDEMPOTENCY_TABLE_NAME"} <= set(env)
    assert container["StopTimeout"] == 60 and int(env["WORKER_STOP_TIMEOUT_S"]) < 60
    assert container["ReadonlyRootFilesystem"] is True


def test_image_comes_from_context_uri_when_given(variant):
    [container] = only(variant("ecs-tuned").service_json, "AWS::ECS::TaskDefinition")["ContainerDefinitions"]
    assert container["Image"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com/orders-worker:1.4.2"
    [asset_container] = only(variant("ecs").service_json, "AWS::ECS::TaskDefinition")["ContainerDefinitions"]
    assert "cdk-hnb659fds-container-assets" in json.dumps(asset_container["Image"])


def test_network_has_no_nat_and_no_inbound(variant):
    t = variant("ecs").service_json
    assert not resources(t, "AWS::EC2::NatGateway")
    sg = only(t, "AWS::EC2::SecurityGroup")
    assert "SecurityGroupIngress" not in sg
    assert only(t, "AWS::EC2::FlowLog")["TrafficType"] == "REJECT"
    settings = only(t, "AWS::ECS::Cluster")["ClusterSettings"]
    assert {"Name": "containerInsights", "Value": "enabled"} in settings


def test_task_role_holds_only_what_the_worker_needs(variant):
    t = variant("ecs").service_json
    assert policy_actions(t, "TaskRole") == PAY_AND_PUBLISH | {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "ecs:GetTaskProtection",
        "ecs:UpdateTaskProtection",
    }


def test_queue_subscription_and_worker_alarms(variant):
    t = variant("ecs").service_json
    assert not resources(t, "AWS::SNS::Subscription", "EcsWorkers")
    sub = only(t, "AWS::SNS::Subscription", "WorkersInbox")  # one path in every variant
    assert sub["Protocol"] == "sqs" and sub["RawMessageDelivery"] is True
    # what SNS cannot deliver to the queue is parked in the DLQ (alarmed), not dropped
    assert "DeadLetter" in json.dumps(sub["RedrivePolicy"]["deadLetterTargetArn"])
    assert not resources(t, "AWS::Logs::MetricFilter")  # failures come from the worker's EMF metrics
    names = {a["Properties"].get("MetricName") for a in resources(t, "AWS::CloudWatch::Alarm").values()}
    assert {"RecordsFailed", "RunningTaskCount", "ApproximateAgeOfOldestMessage"} <= names
