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


def checkov(root: Path) -> dict:
    """One checkov run over every synthesized variant under ``root`` (its start-up is most of a run's time)."""
    proc = subprocess.run(
        [str(CHECKOV), "--config-file", str(ROOT / ".checkov.yaml"), "-d", str(root), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    reports = json.loads(proc.stdout)
    return reports[0] if isinstance(reports, list) else reports


@pytest.fixture(scope="module")
def report(variant, synth_root: Path) -> dict:
    for name in VARIANTS:
        variant(name)
    return checkov(synth_root)


def test_checkov_read_every_resource_of_every_template(report, synth_root: Path):
    templates = list(synth_root.glob("*/*.template.json"))
    resources = sum(len(json.loads(t.read_text())["Resources"]) for t in templates)
    assert len(templates) >= 2 * len(VARIANTS)
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["resource_count"] == resources  # it really read them all


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_checkov_finds_nothing_unacknowledged(report, variant, name):
    outdir = str(variant(name).outdir)
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
        if c["file_abs_path"].startswith(outdir + "/")
    ]
    assert failed == []
    assert not report["results"]["failed_checks"]  # nor in any other variant synthesized beside it


def test_every_skip_has_a_reason():
    lines = (ROOT / ".checkov.yaml").read_text().splitlines()
    skips = [i for i, line in enumerate(lines) if line.strip().startswith("- CKV_")]
    assert skips
    for i in skips:
        assert lines[i - 1].strip().startswith("#"), f"{lines[i].strip()} has no reason above it"
