"""Lambda Managed Instances variant: the capacity provider, its network, the function on it, its mapping."""

import json

from planner.cost import MI_AZS, MI_INTERFACE_ENDPOINTS
from tests.infra.conftest import PAY_AND_PUBLISH, function_by_handler, only, policy_actions, resources

WORKER = "orders.entrypoints.worker_lambda.handler"


def test_the_worker_runs_on_a_capacity_provider_sized_from_context(variant):
    """GIVEN compute=lambda-mi with 8 requests per environment, 4 GiB per vCPU, 8 GiB environments, 3..6 of them
    WHEN synthesized THEN the function carries those numbers, publishes $LATEST.PUBLISHED on every update (the
    unqualified name the mapping invokes), reserves nothing, and the provider may launch 6 x 2 vCPUs."""
    t = variant("lambda-mi").service_json
    fn = function_by_handler(t, WORKER)
    mi = fn["CapacityProviderConfig"]["LambdaManagedInstancesCapacityProviderConfig"]
    assert mi["PerExecutionEnvironmentMaxConcurrency"] == 8
    assert mi["ExecutionEnvironmentMemoryGiBPerVCpu"] == 4
    assert fn["MemorySize"] == 8192 and fn["Runtime"] == "python3.13" and fn["Architectures"] == ["arm64"]
    assert fn["FunctionScalingConfig"] == {"MinExecutionEnvironments": 3, "MaxExecutionEnvironments": 6}
    assert fn["PublishToLatestPublished"] is True
    assert "ReservedConcurrentExecutions" not in fn and "VpcConfig" not in fn
    provider = only(t, "AWS::Lambda::CapacityProvider")
    assert "CapacityProvider" in json.dumps(mi["CapacityProviderArn"])
    assert provider["CapacityProviderScalingConfig"]["MaxVCpuCount"] == 12
    assert provider["InstanceRequirements"]["Architectures"] == ["arm64"]
    assert "OperatorRole" in json.dumps(provider["PermissionsConfig"])
    [role] = [r["Properties"] for k, r in resources(t, "AWS::IAM::Role").items() if "CapacityProviderOperatorRole" in k]
    assert json.dumps(role["ManagedPolicyArns"]).count("AWSLambdaManagedEC2ResourceOperator") == 1
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}


def test_the_instances_sit_in_isolated_subnets_with_endpoints_for_what_the_worker_calls(variant):
    """No NAT, no internet gateway: DynamoDB through a gateway endpoint, SNS and CloudWatch Logs through
    interface endpoints; the instances' security group takes nothing in."""
    t = variant("lambda-mi").service_json
    assert not resources(t, "AWS::EC2::NatGateway") and not resources(t, "AWS::EC2::InternetGateway")
    endpoints = [r["Properties"] for r in resources(t, "AWS::EC2::VPCEndpoint").values()]
    services = sorted(json.dumps(e["ServiceName"]).split(".")[-1].strip('"]}') for e in endpoints)
    assert services == ["dynamodb", "logs", "sns"], services
    assert {e.get("VpcEndpointType", "Gateway") for e in endpoints} == {"Gateway", "Interface"}
    provider = only(t, "AWS::Lambda::CapacityProvider")
    [sg_id] = provider["VpcConfig"]["SecurityGroupIds"]
    sg = t["Resources"][sg_id["Fn::GetAtt"][0]]["Properties"]
    assert not sg.get("SecurityGroupIngress")
    assert [(e["IpProtocol"], e["FromPort"], e["ToPort"]) for e in sg["SecurityGroupEgress"]] == [("tcp", 443, 443)]
    subnets = {s["Ref"] for s in provider["VpcConfig"]["SubnetIds"]}
    for subnet in subnets:
        assert t["Resources"][subnet]["Properties"]["MapPublicIpOnLaunch"] is False
    # what the planner bills for the endpoints (planner/cost.py): 2 interface endpoints in each subnet's AZ
    assert len(subnets) == MI_AZS
    assert sum(e.get("VpcEndpointType") == "Interface" for e in endpoints) == MI_INTERFACE_ENDPOINTS
    assert resources(t, "AWS::EC2::FlowLog")


def test_the_mapping_feeds_the_function_within_what_its_environments_run(variant):
    t = variant("lambda-mi").service_json
    esm = only(t, "AWS::Lambda::EventSourceMapping", "ManagedInstanceWorkers")
    assert esm["ScalingConfig"]["MaximumConcurrency"] == 40 <= 6 * 8
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"] and esm["BatchSize"] == 5
    assert "ProvisionedPollerConfig" not in esm
    assert esm["FunctionName"] == {
        "Ref": next(
            k
            for k in t["Resources"]
            if k.startswith("ManagedInstanceWorkersFunction") and t["Resources"][k]["Type"] == "AWS::Lambda::Function"
        )
    }
    assert not resources(t, "AWS::Lambda::EventSourceMapping", "LambdaWorkers")
    only(t, "AWS::SNS::Subscription", "WorkersInbox")  # the queue's subscription stays where every variant has it
    actions = policy_actions(t, "ManagedInstanceWorkersFunctionServiceRole")
    assert actions >= PAY_AND_PUBLISH
    assert not {a for a in actions if a.startswith("sqs:") and a != "sqs:ReceiveMessage"} - {
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    }
    assert t["Outputs"]["Compute"]["Value"] == "lambda-mi"
    assert "WorkerFunctionName" in t["Outputs"]
