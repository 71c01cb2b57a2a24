#!/usr/bin/env python3
"""CDK app: the data stack and the service stack, workers on ECS or Lambda per ``-c compute=``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from constructs_lib.deploy_rules import DeployRules
from planner.config import ConfigError, load_config
from stacks.data_stack import DataStack
from stacks.service_stack import ServiceStack

CDK_JSON = Path(__file__).resolve().parent / "cdk.json"


def cdk_json_context() -> dict[str, Any]:
    """The defaults and feature flags in cdk.json."""
    return dict(json.loads(CDK_JSON.read_text())["context"])


def new_app(**overrides: Any) -> cdk.App:
    """An App with cdk.json's context, as the CLI would build it.

    Without the CLI (``python app.py``, tests) nothing else reads cdk.json, and
    its feature flags change templates; with the CLI, its context wins anyway.
    """
    outdir = overrides.pop("outdir", None)
    return cdk.App(context={**cdk_json_context(), **overrides}, outdir=outdir)


def build_app(app: cdk.App) -> tuple[DataStack, ServiceStack]:
    """Read config once, build both stacks, attach cdk-nag. Raises ConfigError on bad context."""
    config = load_config(app.node.get_all_context())
    data = DataStack(app, f"{config.stack_prefix}-data", config=config, description="Flash-sale orders: state")
    service = ServiceStack(
        app,
        f"{config.stack_prefix}-service",
        config=config,
        data=data,
        description=f"Flash-sale orders: API and {config.compute} workers",
    )
    for stack in (data, service):
        cdk.Tags.of(stack).add("project", "flash-sale-orders")
    # AwsSolutions: security practice; DeployRules: what AWS refuses or silently breaks at deploy time.
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app), DeployRules(app))  # type: ignore[attr-defined]
    return data, service


def main() -> int:
    app = new_app()
    try:
        build_app(app)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag findings: the report is printed above; no traceback
        if "ValidationFailed" not in str(exc):
            raise
        print(
            "error: cdk-nag (AwsSolutions, Deploy) found unacknowledged issues (see the report above)", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
