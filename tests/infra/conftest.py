"""Synthesize each variant once per session; tests assert on the resulting templates."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from app import build_app, new_app

VARIANTS: dict[str, dict[str, Any]] = {
    "lambda-sqs": {"compute": "lambda", "lambdaTrigger": "sqs"},
    "lambda-sns": {"compute": "lambda", "lambdaTrigger": "sns"},
    "ecs": {"compute": "ecs"},
    # Non-default values, to prove the templates follow context rather than constants.
    "lambda-tuned": {
        "compute": "lambda",
        "lambdaTrigger": "sqs",
        "maxConcurrency": "12",
        "batchSize": "3",
        "maxBatchingWindowSeconds": "2",
        "maxReceiveCount": "3",
        "lambdaMemoryMb": "1024",
        "lambdaTimeoutSeconds": "20",
        "queueVisibilityTimeoutSeconds": "150",
        "retainData": "false",
        "apiAuth": "none",
        # Unreserved everywhere, and the account's existing API Gateway role (a new or small account).
        "reservedConcurrency": "0",
        "apiReservedConcurrency": "0",
        "apiGatewayCloudWatchRole": "false",
    },
    "ecs-tuned": {
        "compute": "ecs",
        "minTasks": "2",
        "maxTasks": "7",
        "backlogPerTaskTarget": "20",
        "wakeQueueDepth": "20",
        "scaleOutCooldownSeconds": "30",
        "scaleInCooldownSeconds": "600",
        "workerConcurrency": "25",
        "fargateCapacity": "ondemand",
        "containerImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/orders-worker:1.4.2",
    },
    # Provisioned pollers instead of the mapping's maximum concurrency (AWS refuses both together).
    "lambda-provisioned": {
        "compute": "lambda",
        "lambdaTrigger": "sqs",
        "lambdaPollerMode": "provisioned",
        "maxConcurrency": "0",
        "lambdaMinPollers": "3",
        "lambdaMaxPollers": "4",
    },
    # Lambda Managed Instances: the worker on a capacity provider's instances (non-default sizes).
    "lambda-mi": {
        "compute": "lambda-mi",
        "lmiPerEnvironmentConcurrency": "8",
        "lmiMemoryGibPerVcpu": "4",
        "lmiMemoryMb": "8192",
        "lmiMinEnvironments": "3",
        "lmiMaxEnvironments": "6",
        "maxConcurrency": "40",
    },
    # Customers signed in with tokens from a Cognito user pool the data stack creates.
    "lambda-jwt": {"compute": "lambda", "apiAuth": "jwt"},
    # The AWS FIS experiments (off by default).
    "ecs-chaos": {"compute": "ecs", "chaos": "true"},
    "lambda-chaos": {
        "compute": "lambda",
        "chaos": "true",
        "fisLambdaExtensionArn": "arn:aws:lambda:us-east-1:123456789012:layer:aws-fis-extension-arm64:9",
    },
}


# Synthesized on demand only (the switch audit's threshold-only changes), not swept by nag, cfn-lint and checkov.
EXTRA_VARIANTS: dict[str, dict[str, Any]] = {
    "ecs-thresholds": {**VARIANTS["ecs"], "backlogPerTaskTarget": "50", "maxTasks": "40", "minTasks": "1"},
    "lambda-thresholds": {**VARIANTS["lambda-sqs"], "maxConcurrency": "40", "batchSize": "3"},
    "ecs-jwt-issuer": {
        "compute": "ecs",
        "apiAuth": "jwt",
        "jwtIssuer": "https://login.example.com/",
        "jwtAudience": "storefront,mobile",
    },
}


@dataclass
class Synth:
    data: Template
    service: Template
    data_json: dict[str, Any]
    service_json: dict[str, Any]
    outdir: Path
    data_stack: cdk.Stack
    service_stack: cdk.Stack


_cache: dict[str, Synth] = {}


def synth(name: str, tmp_root: Path) -> Synth:
    if name not in _cache:
        outdir = tmp_root / name
        app = new_app(outdir=str(outdir), **(VARIANTS.get(name) or EXTRA_VARIANTS[name]))
        data, service = build_app(app)
        assembly = app.synth()  # runs cdk-nag: any unacknowledged finding fails here
        _cache[name] = Synth(
            data=Template.from_stack(data),
            service=Template.from_stack(service),
            data_json=json.loads(Path(assembly.get_stack_by_name(data.stack_name).template_full_path).read_text()),
            service_json=json.loads(
                Path(assembly.get_stack_by_name(service.stack_name).template_full_path).read_text()
            ),
            outdir=outdir,
            data_stack=data,
            service_stack=service,
        )
    return _cache[name]


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cdk")


@pytest.fixture(scope="session")
def variant(synth_root: Path):
    return lambda name: synth(name, synth_root)


def resources(template: dict[str, Any], rtype: str, prefix: str = "") -> dict[str, dict[str, Any]]:
    """``prefix``: the construct path's readable start of the logical id (e.g. "LambdaWorkers")."""
    return {k: v for k, v in template["Resources"].items() if v["Type"] == rtype and k.startswith(prefix)}


def only(template: dict[str, Any], rtype: str, prefix: str = "") -> dict[str, Any]:
    found = resources(template, rtype, prefix)
    assert len(found) == 1, f"expected one {rtype}, found {sorted(found)}"
    return next(iter(found.values()))["Properties"]


def function_by_handler(template: dict[str, Any], handler: str) -> dict[str, Any]:
    [fn] = [
        f["Properties"]
        for f in resources(template, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == handler
    ]
    return fn


def policy_actions(template: dict[str, Any], role_fragment: str) -> set[str]:
    """Every action granted by the IAM policies attached to roles whose reference contains ``role_fragment``."""
    actions: set[str] = set()
    for policy in resources(template, "AWS::IAM::Policy").values():
        if role_fragment in json.dumps(policy["Properties"]["Roles"]):
            for stmt in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions.update(stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]])
    return actions


# Pay and publish: what the workers and the API share (orders + idempotency records, encrypted topic).
PAY_AND_PUBLISH = {
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "sns:Publish",
    "kms:GenerateDataKey",
    "kms:Decrypt",
}
