"""cdk-nag and cfn-lint over every variant's synthesized templates."""

import json
import subprocess
import sys

import pytest
from aws_cdk import aws_sqs as sqs

from app import build_app, new_app
from tests.infra.conftest import VARIANTS

CDK_OWN = {"W3005"}  # redundant DependsOn that CDK itself emits


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_cdk_nag_reports_no_violation(variant, name):
    # The fixture's synth would already have raised; the report says the same on disk.
    report = json.loads((variant(name).outdir / "validation-report.json").read_text())
    failures = [p for p in report["pluginReports"] if p["conclusion"] != "success"]
    assert not failures, json.dumps(failures, indent=1)[:2000]


def test_cdk_nag_is_attached_and_stops_synth_on_a_finding(tmp_path):
    # GIVEN the real app with one unencrypted, TLS-optional queue added to the data stack
    app = new_app(outdir=str(tmp_path), **VARIANTS["lambda-sqs"])
    data, _ = build_app(app)
    sqs.Queue(data, "Careless", encryption=sqs.QueueEncryption.UNENCRYPTED)
    # WHEN it is synthesized THEN validation fails and names the AwsSolutions rules
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert {"AwsSolutions-SQS2", "AwsSolutions-SQS3", "AwsSolutions-SQS4"} <= rules


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_cfn_lint_finds_nothing_but_cdk_own_warnings(variant, name):
    templates = sorted(str(p) for p in variant(name).outdir.glob("*.template.json"))
    assert len(templates) == 2
    proc = subprocess.run(
        [sys.executable, "-m", "cfnlint", "--format", "json", *templates], capture_output=True, text=True, timeout=300
    )
    findings = json.loads(proc.stdout or "[]")
    unexpected = [f for f in findings if f["Rule"]["Id"] not in CDK_OWN]
    assert not unexpected, json.dumps(unexpected, indent=1)[:3000]
