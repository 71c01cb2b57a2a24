"""The deployment config as ``app.py`` builds it (cdk.json's context + overrides), without the CDK."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stacks.config import SPEC, AppConfig, ConfigError, load_config  # noqa: E402

__all__ = ["AppConfig", "ConfigError", "context_of", "parse_context_args", "resolve"]


def parse_context_args(items: list[str]) -> dict[str, str]:
    """``-c KEY=VALUE`` arguments as a mapping; a malformed one raises ValueError naming it."""
    context: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"-c expects KEY=VALUE, got {item!r}")
        context[key] = value
    return context


def resolve(overrides: Mapping[str, Any] | None = None) -> AppConfig:
    """cdk.json's context with ``overrides`` on top, validated exactly as synth validates it."""
    context = dict(json.loads((ROOT / "cdk.json").read_text())["context"])
    context.update(overrides or {})
    return load_config(context)


def context_of(cfg: AppConfig) -> dict[str, Any]:
    """The resolved config as context keys (what a run deployed), e.g. {"maxTasks": 10, ...}."""
    return {key: getattr(cfg, name) for key, (name, _) in SPEC.items()}
