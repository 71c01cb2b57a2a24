"""``make preflight``: read-only checks of the target account before CloudFormation starts.

What the templates cannot know and AWS refuses mid-deploy: how much Lambda concurrency this account can
still reserve, whether the region's API Gateway account has a CloudWatch role, whether the account is
bootstrapped for CDK, whether the Powertools layer exists for this partition and region, and whether Fargate
Spot is offered. Every failure is one line naming the quota or setting and the context key to change; the
exit status is 1 if any check failed. Only read calls are made (``Get*``, ``Describe*``, ``List*``).

    python -m ops.preflight [-c key=value ...]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from constructs_lib.order_runtime import POWERTOOLS_LAYER_NAME, powertools_publisher
from planner.config import AppConfig, parse_context_args, resolve
from stacks import outputs

# Lambda keeps this much of an account's concurrency unreserved ("Lambda always reserves 100 units of
# concurrency for your functions that don't explicitly reserve concurrency": Lambda developer guide,
# "Understanding Lambda function scaling", Concurrency quotas). Small new accounts may have a lower floor;
# the check then errs on the side of refusing, which a quota increase or reserves of 0 resolve.
UNRESERVED_FLOOR = 100
LAMBDA_CONCURRENCY_QUOTA = "L-B99A9384"  # Service Quotas: AWS Lambda, Concurrent executions
BOOTSTRAP_PARAMETER = "/cdk-bootstrap/hnb659fds/version"
MIN_BOOTSTRAP_VERSION = 6  # what aws-cdk-lib 2's default synthesizer's CheckBootstrapVersion rule demands


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False  # passed, but what it read could not confirm the setting

    def line(self) -> str:
        return f"{'FAIL' if not self.ok else 'WARN' if self.warning else 'ok  '} {self.name}: {self.detail}"


class Account:
    """The AWS calls the checks make, behind one object so tests can point it at moto."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self._clients: dict[str, Any] = {}
        self._identity: tuple[str, str] | None = None

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service)
        return self._clients[service]

    @property
    def region(self) -> str:
        return str(self.session.region_name)

    def identity(self) -> tuple[str, str]:
        """(account id, partition), asked of STS once."""
        if self._identity is None:
            me = self.client("sts").get_caller_identity()
            self._identity = (str(me["Account"]), str(me["Arn"]).split(":")[1])
        return self._identity


def _reserved_now(account: Account, stack_name: str) -> int:
    """What this deployment's functions reserve today (an update gives it back before it takes)."""
    pages = account.client("cloudformation").get_paginator("list_stack_resources").paginate(StackName=stack_name)
    try:  # ListStackResources: DescribeStackResources stops at 100 resources
        listed = [r for page in pages for r in page["StackResourceSummaries"]]
    except ClientError:
        return 0  # not deployed yet
    lam = account.client("lambda")
    total = 0
    for resource in listed:
        if resource["ResourceType"] == "AWS::Lambda::Function" and resource.get("PhysicalResourceId"):
            try:
                found = lam.get_function_concurrency(FunctionName=resource["PhysicalResourceId"])
            except ClientError:
                continue
            total += int(found.get("ReservedConcurrentExecutions") or 0)
    return total


def check_lambda_concurrency(account: Account, cfg: AppConfig) -> Check:
    name = "Lambda concurrency"
    wanted = {key: n for key, n in cfg.reserved_by_function.items() if n}
    need = sum(wanted.values())
    limits = account.client("lambda").get_account_settings()["AccountLimit"]
    limit, unreserved = int(limits["ConcurrentExecutions"]), int(limits["UnreservedConcurrentExecutions"])
    reservable = unreserved + _reserved_now(account, f"{cfg.stack_prefix}-service") - UNRESERVED_FLOOR
    figures = f"ConcurrentExecutions={limit}, UnreservedConcurrentExecutions={unreserved}"
    if need <= max(0, reservable):
        return Check(name, True, f"reserves {need} of {max(0, reservable)} reservable ({figures})")
    keys = ", ".join(f"{k}={v}" for k, v in wanted.items())
    return Check(
        name,
        False,
        f"this deployment reserves {need} ({keys}) but the account can reserve {max(0, reservable)} ({figures}; "
        f"Lambda keeps {UNRESERVED_FLOOR} unreserved): lower those keys or set them to 0 (unreserved), or raise "
        f"the quota (Service Quotas {LAMBDA_CONCURRENCY_QUOTA})",
    )


def check_api_gateway_role(account: Account, cfg: AppConfig) -> Check:
    name = "API Gateway CloudWatch role"
    role = account.client("apigateway").get_account().get("cloudwatchRoleArn")
    if cfg.api_gateway_cloudwatch_role:
        detail = f"the stack sets it (apiGatewayCloudWatchRole=true){'; replacing ' + role if role else ''}"
        return Check(name, True, detail)
    if role:
        return Check(name, True, f"the account's own: {role}")
    return Check(
        name,
        False,
        f"none set in {account.region} and apiGatewayCloudWatchRole=false: WebSocket access logging needs one; "
        "deploy with -c apiGatewayCloudWatchRole=true",
    )


def check_bootstrap(account: Account, cfg: AppConfig) -> Check:
    name = "CDK bootstrap"
    acct, _ = account.identity()
    try:
        version = int(account.client("ssm").get_parameter(Name=BOOTSTRAP_PARAMETER)["Parameter"]["Value"])
    except ClientError:
        return Check(
            name, False, f"{acct}/{account.region} is not bootstrapped: npx cdk bootstrap aws://{acct}/{account.region}"
        )
    if version < MIN_BOOTSTRAP_VERSION:
        return Check(name, False, f"version {version} < {MIN_BOOTSTRAP_VERSION}: run npx cdk bootstrap again")
    return Check(name, True, f"version {version}")


def powertools_layer_arn(cfg: AppConfig, partition: str, region: str) -> str | None:
    """The layer the stacks will use here (the same choice as ``constructs_lib.order_runtime``)."""
    if cfg.powertools_layer_arn:
        return cfg.powertools_layer_arn
    publisher = powertools_publisher(partition, region)
    if publisher is None:
        return None
    return f"arn:{partition}:lambda:{region}:{publisher}:layer:{POWERTOOLS_LAYER_NAME}:{cfg.powertools_layer_version}"


def check_powertools_layer(account: Account, cfg: AppConfig) -> Check:
    name = "Powertools layer"
    _, partition = account.identity()
    arn = powertools_layer_arn(cfg, partition, account.region)
    if arn is None:
        return Check(
            name, False, f"no official layer in {partition}/{account.region}: set -c powertoolsLayerArn=<a layer ARN>"
        )
    try:
        layer, version = arn.rsplit(":", 1)
        account.client("lambda").get_layer_version(LayerName=layer, VersionNumber=int(version))
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        return Check(
            name,
            False,
            f"{arn} is not readable here ({code}): set -c powertoolsLayerVersion=<a published version> or "
            "-c powertoolsLayerArn=<a layer ARN>",
        )
    return Check(name, True, arn)


def check_fargate(account: Account, cfg: AppConfig) -> Check | None:
    if cfg.compute != "ecs":
        return None
    name = "Fargate capacity"
    wanted = ["FARGATE", "FARGATE_SPOT"] if cfg.fargate_capacity == "spot" else ["FARGATE"]
    found = account.client("ecs").describe_capacity_providers(capacityProviders=wanted)
    missing = sorted(set(wanted) - {p["name"] for p in found.get("capacityProviders", [])})
    if not missing:
        return Check(name, True, " and ".join(wanted))
    # No AWS document lists the regions without Fargate Spot, and not every endpoint describes the AWS-owned
    # providers: a warning, not a refusal (the deploy itself fails on the service if one is missing).
    hint = (
        "-c fargateCapacity=ondemand" if "FARGATE" not in missing else "-c fargateCapacity=ondemand, or another region"
    )
    detail = f"{', '.join(missing)} not described in {account.region}; if the service fails to create, use {hint}"
    return Check(name, True, detail, warning=True)


def deployed_worker_mappings(account: Any, stack_name: str) -> list[dict[str, Any]]:
    """The event source mappings of the deployed worker function (none when not deployed, or not Lambda)."""
    try:
        [stack] = account.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return []
        raise  # AccessDenied and the like: the check could not read, and says so
    found = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    name = found.get(outputs.WORKER_FUNCTION_NAME)
    if not name:
        return []
    listed = account.client("lambda").list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
    return list(listed)


# The update-event-source-mapping option that sets each property (an empty value clears it).
CLI_OPTION = {"ScalingConfig": "--scaling-config", "ProvisionedPollerConfig": "--provisioned-poller-config"}


def other_mode_left(mapping: dict[str, Any], cfg: AppConfig) -> tuple[str, str] | None:
    """What of the other scaling mode a deployed mapping holds that ``cfg`` cannot deploy beside:
    (the mapping property to clear, what it holds), or None."""
    maximum = (mapping.get("ScalingConfig") or {}).get("MaximumConcurrency")
    pollers = mapping.get("ProvisionedPollerConfig") or {}
    if cfg.variant == "lambda-sqs-provisioned" and maximum:
        return "ScalingConfig", f"maximum concurrency {maximum}"
    if cfg.variant != "lambda-sqs-provisioned" and pollers.get("MinimumPollers"):
        return "ProvisionedPollerConfig", (
            f"provisioned pollers ({pollers.get('MinimumPollers')}..{pollers.get('MaximumPollers', 200)})"
        )
    return None


def check_poller_mode_switch(account: Account, cfg: AppConfig) -> Check | None:
    """A switch between standard and provisioned pollers is two steps on AWS: CloudFormation updates the mapping
    in place with what the template names, so the setting of the mode left behind stays on it, and Lambda refuses
    a maximum concurrency beside provisioned pollers (the update fails and rolls back). The preflight names the
    one call that clears it first."""
    if cfg.compute != "lambda":
        return None  # ECS removes the function and its mapping
    name = "SQS poller mode"
    # lambdaTrigger=sns keeps the orders queue's mapping as a drain with a maximum concurrency: standard mode.
    for mapping in deployed_worker_mappings(account, f"{cfg.stack_prefix}{outputs.SERVICE_STACK}"):
        left = other_mode_left(mapping, cfg)
        if left is None:
            continue
        uuid, option, what = mapping["UUID"], CLI_OPTION[left[0]], left[1]
        return Check(
            name,
            False,
            f"the deployed mapping {uuid} has {what}, which a stack update leaves in place and Lambda refuses "
            f"beside the other mode; clear it first: aws lambda update-event-source-mapping --uuid {uuid} "
            f"{option} '{{}}'",
        )
    return Check(name, True, f"{cfg.poller_mode}; the deployed mapping (if any) holds nothing of the other mode")


CHECKS: tuple[Callable[[Account, AppConfig], Check | None], ...] = (
    check_lambda_concurrency,
    check_api_gateway_role,
    check_bootstrap,
    check_powertools_layer,
    check_fargate,
    check_poller_mode_switch,
)


def run(account: Account, cfg: AppConfig) -> list[Check]:
    results = []
    for check in CHECKS:
        try:
            result = check(account, cfg)
        except (ClientError, BotoCoreError) as exc:
            result = Check(check.__name__.removeprefix("check_").replace("_", " "), False, f"could not read: {exc}")
        if result is not None:
            results.append(result)
    return results


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m ops.preflight", description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE")
    args, _ = parser.parse_known_args(argv)  # CDK_ARGS may carry CLI flags for cdk deploy: not ours
    try:
        cfg = resolve(parse_context_args(args.context))
    except ValueError as exc:  # a malformed -c, or a ConfigError naming the key
        print(f"error: {exc}", file=sys.stderr)
        return 2
    account = Account(boto3.session.Session())
    try:
        acct, partition = account.identity()
    except (ClientError, BotoCoreError) as exc:
        print(f"error: no usable AWS credentials: {exc}", file=sys.stderr)
        return 2
    print(f"preflight: {acct} in {partition}/{account.region}, compute={cfg.compute}")
    results = run(account, cfg)
    for result in results:
        print(result.line())
    failed = [r for r in results if not r.ok]
    print(f"preflight: {'FAILED: ' + str(len(failed)) + ' check(s)' if failed else 'all checks passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
