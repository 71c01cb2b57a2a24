"""Each ECS unit builds on a bare Stack: network, service, backlog scaling."""

import aws_cdk as cdk
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Match, Template

from constructs_lib.ecs_workers import BacklogScaling, ScalingProps, WorkerNetwork, capacity_strategy


def test_network_alone_has_public_subnets_no_nat_and_a_reject_flow_log():
    stack = cdk.Stack(cdk.App(), "Net")
    WorkerNetwork(
        stack, "Network", log_retention=cdk.aws_logs.RetentionDays.ONE_WEEK, removal_policy=cdk.RemovalPolicy.DESTROY
    )
    t = Template.from_stack(stack)
    t.resource_count_is("AWS::EC2::NatGateway", 0)
    t.has_resource_properties("AWS::EC2::FlowLog", {"TrafficType": "REJECT"})
    t.has_resource_properties("AWS::EC2::SecurityGroup", {"SecurityGroupIngress": Match.absent()})


def test_backlog_scaling_alone_tracks_backlog_per_running_task_and_wakes_by_adding():
    stack = cdk.Stack(cdk.App(), "Scaling")
    queue = sqs.Queue.from_queue_arn(stack, "Queue", "arn:aws:sqs:us-east-1:123456789012:orders")
    BacklogScaling(
        stack,
        "Scaling",
        cluster_name="cluster",
        service_name="service",
        queue=queue,
        scaling=ScalingProps(
            min_tasks=0,
            max_tasks=4,
            backlog_per_task_target=50,
            wake_queue_depth=1,
            scale_out_cooldown=cdk.Duration.seconds(60),
            scale_in_cooldown=cdk.Duration.seconds(300),
        ),
    )
    t = Template.from_stack(stack)
    t.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {"MinCapacity": 0, "MaxCapacity": 4, "ResourceId": "service/cluster/service"},
    )
    t.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "StepScaling",
            "StepScalingPolicyConfiguration": Match.object_like({"AdjustmentType": "ChangeInCapacity"}),
        },
    )
    t.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": Match.object_like({"TargetValue": 50}),
        },
    )


def test_capacity_strategy_keeps_an_on_demand_base_under_spot_only_when_asked():
    def plain(strategy):
        return [(s.capacity_provider, s.base, s.weight) for s in strategy]

    assert plain(capacity_strategy(spot=True, on_demand_base=2)) == [("FARGATE", 2, 0), ("FARGATE_SPOT", None, 1)]
    assert plain(capacity_strategy(spot=True, on_demand_base=0)) == [("FARGATE_SPOT", None, 1)]
    assert plain(capacity_strategy(spot=False, on_demand_base=3)) == [("FARGATE", None, 1)]
