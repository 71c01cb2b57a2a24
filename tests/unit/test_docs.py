"""The README and docs/ stay true to the code: links resolve, every command they show exists, the
context-keys table is the config's keys with cdk.json's defaults, the event schema version is the one
the runtime publishes."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from planner.config import SPEC

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", page.read_text(), re.M)}


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z0-9-]*):", (ROOT / "Makefile").read_text(), re.M))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: link to {target} does not resolve"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), f"{page.name}: no heading #{anchor} in {resolved.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_make_target_shown_exists(page: Path) -> None:
    shown = set(re.findall(r"`make ([a-z][a-z0-9-]*)", page.read_text()))
    shown |= set(re.findall(r"^make ([a-z][a-z0-9-]*)", page.read_text(), re.M))
    assert shown <= make_targets(), f"{page.name}: no such make target {sorted(shown - make_targets())}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_python_module_shown_is_importable(page: Path) -> None:
    for module in set(re.findall(r"python -m ([a-z_][\w.]*)", page.read_text())):
        assert importlib.util.find_spec(module) is not None, f"{page.name}: python -m {module} does not exist"


def test_the_context_keys_table_is_the_configs_keys_with_cdk_json_defaults() -> None:
    text = (ROOT / "docs" / "context-keys.md").read_text()
    defaults = json.loads((ROOT / "cdk.json").read_text())["context"]
    documented: dict[str, str] = {}
    for keys, values in re.findall(r"^\| ((?:`\w+`(?: / )?)+) \| ((?:`[^`]*`(?: / )?)+) \|", text, re.M):
        names = re.findall(r"`(\w+)`", keys)
        vals = re.findall(r"`([^`]*)`", values)
        assert len(names) == len(vals), keys
        documented.update(zip(names, vals, strict=True))
    assert set(documented) == set(SPEC), (
        f"undocumented {set(SPEC) - set(documented)}, unknown {set(documented) - set(SPEC)}"
    )
    for key, shown in documented.items():
        if key in defaults:
            value = defaults[key]
            expected = str(value).lower() if isinstance(value, bool) else str(value)
            assert shown.strip('"') == expected, f"{key}: docs say {shown}, cdk.json {value!r}"


def test_the_documented_schema_version_is_the_published_one() -> None:
    from orders.domain.events import SCHEMA_VERSION

    schema = json.loads((ROOT / "docs" / "events.schema.json").read_text())
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    for page in PAGES:
        for version in re.findall(r"version (\d+)\)", page.read_text()):
            assert int(version) == SCHEMA_VERSION, f"{page.name} says version {version}"
