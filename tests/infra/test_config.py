"""Context validation: every bad value stops synth with one line naming key, value and what is allowed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from planner.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = json.loads((ROOT / "cdk.json").read_text())["context"]


def config_with(**overrides):
    return load_config({**DEFAULTS, **overrides})


def test_defaults_are_valid_and_typed():
    cfg = config_with()
    assert cfg.compute == "lambda" and cfg.max_tasks == 25 and cfg.retain_data is True
    assert cfg.variant == "lambda-sqs" and cfg.poller_mode == "standard"
    provisioned = config_with(lambdaPollerMode="provisioned", maxConcurrency="0", reservedConcurrency="0")
    assert provisioned.variant == "lambda-sqs-provisioned" and provisioned.max_pollers == 5
    assert config_with(maxTasks="7", retainData="false").max_tasks == 7
    mi = config_with(compute="lambda-mi", lmiMemoryGibPerVcpu="2", lmiMemoryMb="4096")
    assert mi.variant == "lambda-mi" and mi.mi_vcpus_per_env == 2 and mi.mi_min_envs == 3
    # the function reserves nothing on a capacity provider: reservedConcurrency does not cap its mapping
    assert config_with(compute="lambda-mi", reservedConcurrency="10", maxConcurrency="40").max_concurrency == 40


@pytest.mark.parametrize(
    ("overrides", "key", "allowed"),
    [
        ({"compute": "k8s"}, "compute", "one of lambda, ecs, lambda-mi"),
        ({"compute": "lambda-mi", "lmiMemoryGibPerVcpu": "4"}, "lmiMemoryMb", "a multiple of 4096 MiB"),
        ({"lmiMemoryGibPerVcpu": "3"}, "lmiMemoryGibPerVcpu", "one of 2, 4, 8"),
        ({"lmiMemoryMb": "1024"}, "lmiMemoryMb", "an integer from 2048 to 32768"),
        ({"lmiPerEnvironmentConcurrency": "1601"}, "lmiPerEnvironmentConcurrency", "an integer from 1 to 1600"),
        ({"lmiMinEnvironments": "2"}, "lmiMinEnvironments", "an integer from 3 to 1000"),
        ({"lmiMinEnvironments": "5", "lmiMaxEnvironments": "4"}, "lmiMinEnvironments", "at most lmiMaxEnvironments"),
        (
            {"compute": "lambda-mi", "lmiMaxEnvironments": "8"},
            "maxConcurrency",
            "at most lmiMaxEnvironments x lmiPerEnvironmentConcurrency (40)",
        ),
        ({"compute": "lambda-mi", "lambdaTrigger": "sns"}, "lambdaTrigger", "sqs with compute=lambda-mi"),
        ({"compute": "lambda-mi", "chaos": "true"}, "chaos", "false with compute=lambda-mi"),
        ({"lambdaTrigger": "kinesis"}, "lambdaTrigger", "one of sqs, sns"),
        ({"maxTasks": "many"}, "maxTasks", "an integer from 1 to 1000"),
        ({"maxTasks": "0"}, "maxTasks", "an integer from 1 to 1000"),
        ({"minTasks": "-1"}, "minTasks", "an integer from 0 to 1000"),
        ({"minTasks": "9", "maxTasks": "3"}, "minTasks", "at most maxTasks (3)"),
        ({"maxConcurrency": "60"}, "maxConcurrency", "at most reservedConcurrency (50)"),
        ({"maxConcurrency": "1"}, "maxConcurrency", "an integer from 2 to 1000"),
        (
            {"queueVisibilityTimeoutSeconds": "100"},
            "queueVisibilityTimeoutSeconds",
            ">= 6 x lambdaTimeoutSeconds (180)",
        ),
        (
            {"workerConcurrency": "400", "lambdaTimeoutSeconds": "15", "queueVisibilityTimeoutSeconds": "200"},
            "queueVisibilityTimeoutSeconds",
            ">= the worst-case ECS processing time (246 s",
        ),
        ({"maxConcurrency": "0"}, "maxConcurrency", "2-1000 with lambdaPollerMode=standard"),
        ({"lambdaPollerMode": "provisioned"}, "maxConcurrency", "AWS refuses maximum concurrency and provisioned"),
        ({"lambdaPollerMode": "fast"}, "lambdaPollerMode", "one of standard, provisioned"),
        (
            {"lambdaPollerMode": "provisioned", "maxConcurrency": "0", "lambdaMaxPollers": "6"},
            "lambdaMaxPollers",
            "at most reservedConcurrency / 10 (5)",
        ),
        (
            {"lambdaPollerMode": "provisioned", "maxConcurrency": "0", "lambdaTrigger": "sns"},
            "lambdaPollerMode",
            "standard unless compute=lambda and lambdaTrigger=sqs",
        ),
        ({"lambdaMinPollers": "1"}, "lambdaMinPollers", "an integer from 2 to 200"),
        ({"lambdaMinPollers": "201"}, "lambdaMinPollers", "an integer from 2 to 200"),
        ({"lambdaMaxPollers": "2001"}, "lambdaMaxPollers", "an integer from 2 to 2000"),
        ({"lambdaMinPollers": "9", "lambdaMaxPollers": "4"}, "lambdaMinPollers", "at most lambdaMaxPollers (4)"),
        ({"lambdaTimeoutSeconds": "2"}, "lambdaTimeoutSeconds", "room for a whole batch"),
        ({"batchSize": "10", "lambdaTimeoutSeconds": "5"}, "lambdaTimeoutSeconds", "= 6000 ms"),
        ({"batchSize": "11"}, "batchSize", "an integer from 1 to 10"),
        ({"maxTasks": " 7 "}, "maxTasks", "an integer from 1 to 1000"),
        ({"maxTasks": "1_0"}, "maxTasks", "an integer from 1 to 1000"),
        ({"maxTasks": "١٢"}, "maxTasks", "an integer from 1 to 1000"),
        ({"maxTasks": 7.5}, "maxTasks", "an integer from 1 to 1000"),
        ({"idempotencyTtlSeconds": "120"}, "idempotencyTtlSeconds", "at least queueVisibilityTimeoutSeconds (180)"),
        (
            {"queueRetentionDays": "1", "alarmOldestMessageAgeSeconds": "86400"},
            "alarmOldestMessageAgeSeconds",
            "less than queueRetentionDays (1 d",
        ),
        ({"taskStopTimeoutSeconds": "10", "paymentLatencyMs": "9000"}, "taskStopTimeoutSeconds", "at least 14 s"),
        ({"compute": "ecs", "lambdaTrigger": "sns"}, "lambdaTrigger", "no effect with compute='ecs'"),
        ({"apiReservedConcurrency": "-1"}, "apiReservedConcurrency", "an integer from 0 to 1000"),
        ({"consumersReservedConcurrency": "1"}, "consumersReservedConcurrency", "0 (unreserved) or at least 2"),
        ({"fargateOnDemandBase": "30"}, "fargateOnDemandBase", "at most maxTasks (25)"),
        ({"snsRetryAttempts": "3"}, "snsRetryAttempts", "an integer from 0 to 2"),
        ({"retainData": "yes"}, "retainData", "true or false"),
        ({"paymentFailureRate": "1.5"}, "paymentFailureRate", "a number from 0.0 to 1.0"),
        ({"paymentFailureRate": "nan"}, "paymentFailureRate", "a number from 0.0 to 1.0"),
        ({"logRetentionDays": "10"}, "logRetentionDays", "a CloudWatch Logs retention in days"),
        ({"taskCpu": "300"}, "taskCpu", "one of 256, 512"),
        ({"taskMemoryMb": "4096"}, "taskMemoryMb", "512-2048 MiB for taskCpu=256"),
        ({"fargateCapacity": "cheap"}, "fargateCapacity", "one of spot, ondemand"),
        ({"containerImage": "not an image"}, "containerImage", "an image URI or empty"),
        ({"powertoolsLayerArn": "arn:nope"}, "powertoolsLayerArn", "a Lambda layer version ARN or empty"),
        ({"stackPrefix": "bad prefix"}, "stackPrefix", "a CamelCase name"),
        ({"alarmEmail": "ops-at-example"}, "alarmEmail", "an e-mail address or empty"),
    ],
)
def test_bad_values_name_key_value_and_allowed(overrides, key, allowed):
    with pytest.raises(ConfigError) as info:
        config_with(**overrides)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"context key '{key}' = ")
    assert allowed in message


@pytest.mark.parametrize("spelling", ["maxTask", "max_tasks", "MaxTasks", "maxTasks ", "MAX-TASKS"])
def test_unknown_key_in_any_spelling_suggests_the_known_one(spelling):
    with pytest.raises(ConfigError) as info:
        config_with(**{spelling: "5"})
    assert str(info.value) == f"context key {spelling!r} is not known (did you mean 'maxTasks'?)"


def test_cdk_feature_flags_and_cli_keys_are_not_mistaken_for_typos():
    config_with(**{"@aws-cdk/core:newStyleStackSynthesis": True, "aws:cdk:enable-path-metadata": True})


def test_missing_key_is_reported():
    context = dict(DEFAULTS)
    del context["maxTasks"]
    with pytest.raises(ConfigError, match="context key 'maxTasks' is missing"):
        load_config(context)


def test_app_exits_nonzero_with_one_line_and_no_traceback(tmp_path):
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps({"compute": "k8s"}), "CDK_OUTDIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith(("b'", "!!"))]
    assert lines == ["error: context key 'compute' = 'k8s': expected one of lambda, ecs, lambda-mi"]
    assert "Traceback" not in proc.stderr
