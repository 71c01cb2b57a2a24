"""-c chaos=true adds an AWS FIS experiment per variant; off by default."""

import json
from pathlib import Path

import pytest

from planner.config import ConfigError, load_config
from tests.infra.conftest import VARIANTS, only, resources

ROOT_DEFAULTS = json.loads((Path(__file__).resolve().parents[2] / "cdk.json").read_text())


def stop_alarm_names(template):
    ids = [json.dumps(c["Value"]) for c in template["StopConditions"]]
    assert all(c["Source"] == "aws:cloudwatch:alarm" for c in template["StopConditions"])
    return ids


@pytest.mark.parametrize("name", ["lambda-sqs", "lambda-sns", "ecs"])
def test_no_experiment_unless_asked(variant, name):
    assert not resources(variant(name).service_json, "AWS::FIS::ExperimentTemplate")


def test_ecs_experiment_stops_a_share_of_this_services_tasks_and_stops_on_alarms(variant):
    t = variant("ecs-chaos").service_json
    template = only(t, "AWS::FIS::ExperimentTemplate")
    [action] = template["Actions"].values()
    assert action["ActionId"] == "aws:ecs:stop-task"
    [target] = template["Targets"].values()
    assert target["ResourceType"] == "aws:ecs:task" and target["SelectionMode"] == "PERCENT(30)"
    assert set(target["Parameters"]) == {"cluster", "service"}
    stops = stop_alarm_names(template)
    assert len(stops) == 2 and any("DeadLetters" in s for s in stops) and any("OldestMessageAge" in s for s in stops)


def test_lambda_experiment_fails_and_delays_the_worker_through_the_fis_extension(variant):
    t = variant("lambda-chaos").service_json
    template = only(t, "AWS::FIS::ExperimentTemplate")
    assert {a["ActionId"] for a in template["Actions"].values()} == {
        "aws:lambda:invocation-error",
        "aws:lambda:invocation-add-delay",
    }
    [target] = template["Targets"].values()
    assert target["ResourceType"] == "aws:lambda:function" and target["SelectionMode"] == "ALL"
    worker = next(
        f["Properties"]
        for f in resources(t, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == "orders.entrypoints.worker_lambda.handler"
    )
    env = worker["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/aws-fis/bootstrap" and "AWS_FIS_CONFIGURATION_LOCATION" in env
    assert any("aws-fis-extension" in json.dumps(layer) for layer in worker["Layers"])
    bucket = only(t, "AWS::S3::Bucket")
    assert bucket["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True


def test_fis_role_holds_only_what_the_experiment_does(variant):
    for name, expected in (
        ("ecs-chaos", {"ecs:StopTask", "ecs:DescribeTasks", "ecs:ListTasks"}),
        ("lambda-chaos", {"s3:PutObject", "s3:DeleteObject", "lambda:GetFunction"}),
    ):
        t = variant(name).service_json
        actions = set()
        for policy in resources(t, "AWS::IAM::Policy").values():
            if "FaultInjectionRole" in json.dumps(policy["Properties"]["Roles"]):
                for stmt in policy["Properties"]["PolicyDocument"]["Statement"]:
                    actions.update(stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]])
        assert actions == expected, name


def test_lambda_chaos_without_the_extension_arn_stops_synth_in_one_line():
    with pytest.raises(ConfigError, match=r"^context key 'fisLambdaExtensionArn' = '': expected") as info:
        load_config({**ROOT_DEFAULTS["context"], **VARIANTS["lambda-chaos"], "fisLambdaExtensionArn": ""})
    assert "\n" not in str(info.value)
