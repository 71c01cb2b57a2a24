"""`make preflight` under moto: a roomy account passes; a small or unprepared one is refused in one line each."""

from __future__ import annotations

import io
import zipfile

import boto3
import pytest
from moto import mock_aws

from app import cdk_json_context
from ops import preflight
from planner.config import load_config
from sandbox.emulator import moto_fixes


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("python/x.py", "")
    return buf.getvalue()


@pytest.fixture
def account(monkeypatch):
    """A bootstrapped moto account with a published layer; the Lambda quota is moto's own setting."""
    moto_fixes.fix_lambda_account_settings()
    monkeypatch.setenv("MOTO_LAMBDA_CONCURRENCY_QUOTA", "1000")
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        session.client("ssm").put_parameter(Name=preflight.BOOTSTRAP_PARAMETER, Value="27", Type="String")
        layer = session.client("lambda").publish_layer_version(LayerName="powertools", Content={"ZipFile": _zip()})
        yield preflight.Account(session), layer["LayerVersionArn"]


def config(layer_arn: str, **overrides: str):
    return load_config({**cdk_json_context(), "powertoolsLayerArn": layer_arn, **overrides})


def by_name(results):
    return {r.name: r for r in results}


def test_a_default_account_passes_every_check(account):
    acct, layer = account
    results = by_name(preflight.run(acct, config(layer)))
    assert all(r.ok for r in results.values()), [r.line() for r in results.values()]
    assert "reserves 150 of 900 reservable" in results["Lambda concurrency"].detail


def test_a_small_quota_account_is_refused_in_one_line_naming_the_keys(account, monkeypatch):
    # GIVEN a new account with 50 concurrent executions
    acct, layer = account
    monkeypatch.setenv("MOTO_LAMBDA_CONCURRENCY_QUOTA", "50")
    # WHEN the default (reserving) deployment is checked
    [check] = [r for r in preflight.run(acct, config(layer)) if r.name == "Lambda concurrency"]
    # THEN it fails, naming each reserving key and the quota
    assert not check.ok
    line = check.line()
    assert "\n" not in line
    assert "reservedConcurrency=50" in line and "apiReservedConcurrency=100" in line
    assert "can reserve 0" in line and preflight.LAMBDA_CONCURRENCY_QUOTA in line
    # AND with every reserve at 0 (unreserved) the same account passes
    unreserved = config(layer, reservedConcurrency="0", apiReservedConcurrency="0")
    assert by_name(preflight.run(acct, unreserved))["Lambda concurrency"].ok


def test_opting_out_of_the_account_role_needs_one_in_the_account(account):
    acct, layer = account
    check = by_name(preflight.run(acct, config(layer, apiGatewayCloudWatchRole="false")))["API Gateway CloudWatch role"]
    assert not check.ok and "apiGatewayCloudWatchRole=true" in check.detail
    role = "arn:aws:iam::123456789012:role/apigw-logs"
    acct.client("apigateway").update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": role}]
    )
    assert by_name(preflight.run(acct, config(layer, apiGatewayCloudWatchRole="false")))[
        "API Gateway CloudWatch role"
    ].ok


def test_an_unbootstrapped_account_and_a_missing_layer_are_refused(account):
    acct, layer = account
    acct.client("ssm").delete_parameter(Name=preflight.BOOTSTRAP_PARAMETER)
    results = by_name(preflight.run(acct, config(layer.rsplit(":", 1)[0] + ":99")))
    assert "npx cdk bootstrap aws://" in results["CDK bootstrap"].line() and not results["CDK bootstrap"].ok
    assert not results["Powertools layer"].ok and "powertoolsLayerArn" in results["Powertools layer"].detail


def test_fargate_capacity_is_checked_for_ecs_and_warns_when_it_cannot_confirm(account):
    acct, layer = account
    results = by_name(preflight.run(acct, config(layer, compute="ecs")))
    fargate = results["Fargate capacity"]
    # moto describes no AWS-owned capacity providers: the check cannot confirm them, and names the key
    assert fargate.ok and fargate.warning and "fargateCapacity=ondemand" in fargate.line()
    assert "reserves 100 of 900" in results["Lambda concurrency"].detail  # the API only: ECS reserves nothing
    assert "Fargate capacity" not in by_name(preflight.run(acct, config(layer)))


def test_the_official_layer_is_named_per_partition_and_region():
    cfg = load_config(cdk_json_context())
    assert ":017000801446:" in (preflight.powertools_layer_arn(cfg, "aws", "eu-west-1") or "")
    assert ":498634801083:" in (preflight.powertools_layer_arn(cfg, "aws-cn", "cn-north-1") or "")
    assert preflight.powertools_layer_arn(cfg, "aws-cn", "cn-northwest-1") is None
    assert ":165093116878:" in (preflight.powertools_layer_arn(cfg, "aws-us-gov", "us-gov-west-1") or "")


def test_bad_context_is_one_line_exit_2(capsys):
    assert preflight.main(["-c", "reservedConcurrency=lots"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "reservedConcurrency" in err


def _deploy_worker_mapping(session, **scaling):
    """A deployed service stack whose worker function reads a queue through a mapping with ``scaling``."""
    from stacks import outputs

    role = session.client("iam").create_role(RoleName="worker", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    template = {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "orders"}},
            "Worker": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Runtime": "python3.13",
                    "Handler": "index.handler",
                    "Role": role,
                    "Code": {"ZipFile": "def handler(event, context): return None"},
                },
            },
            "Mapping": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "FunctionName": {"Ref": "Worker"},
                    "EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]},
                    **scaling,
                },
            },
        },
        "Outputs": {outputs.WORKER_FUNCTION_NAME: {"Value": {"Ref": "Worker"}}},
    }
    import json

    session.client("cloudformation").create_stack(StackName="FlashSale-service", TemplateBody=json.dumps(template))


@pytest.mark.parametrize(
    ("deployed", "overrides", "clears"),
    [
        (
            {"ScalingConfig": {"MaximumConcurrency": 50}},
            {"lambdaPollerMode": "provisioned", "maxConcurrency": "0"},
            "--scaling-config '{}'",
        ),
        (
            {"ProvisionedPollerConfig": {"MinimumPollers": 2, "MaximumPollers": 5}},
            {},
            "--provisioned-poller-config '{}'",
        ),
    ],
    ids=["standard->provisioned", "provisioned->standard"],
)
def test_a_poller_mode_switch_names_the_call_that_clears_the_old_mode_first(account, deployed, overrides, clears):
    """GIVEN a deployed mapping in one mode WHEN the config asks for the other THEN the preflight refuses with the
    one call that clears what CloudFormation would leave on the mapping; the same mode passes."""
    acct, layer = account
    _deploy_worker_mapping(acct.session, **deployed)
    [check] = [r for r in preflight.run(acct, config(layer, **overrides)) if r.name == "SQS poller mode"]
    assert not check.ok and clears in check.detail and "update-event-source-mapping --uuid " in check.detail
    same = {} if overrides else {"lambdaPollerMode": "provisioned", "maxConcurrency": "0"}
    assert by_name(preflight.run(acct, config(layer, **same)))["SQS poller mode"].ok
