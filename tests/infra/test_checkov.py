"""checkov over every variant's templates, beside cdk-nag and cfn-lint; skips live in .checkov.yaml with reasons."""

import json
import subprocess
from pathlib import Path

import pytest

from tests.infra.conftest import VARIANTS

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"

if not CHECKOV.exists():
    pytest.fail("checkov is not installed: run `make setup` (it installs requirements-checkov.txt)", pytrace=False)


def checkov(outdir: Path) -> dict:
    proc = subprocess.run(
        [str(CHECKOV), "--config-file", str(ROOT / ".checkov.yaml"), "-d", str(outdir), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    reports = json.loads(proc.stdout)
    return reports[0] if isinstance(reports, list) else reports


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_checkov_finds_nothing_unacknowledged(variant, name):
    report = checkov(variant(name).outdir)
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in report["results"]["failed_checks"]]
    assert report["summary"]["passed"] > 0  # it really read the templates
    assert failed == []


def test_every_skip_has_a_reason():
    lines = (ROOT / ".checkov.yaml").read_text().splitlines()
    skips = [i for i, line in enumerate(lines) if line.strip().startswith("- CKV_")]
    assert skips
    for i in skips:
        assert lines[i - 1].strip().startswith("#"), f"{lines[i].strip()} has no reason above it"
