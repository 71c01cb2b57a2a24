"""Shared fixtures. No test may reach a real AWS endpoint or use real credentials."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.helpers import FakeLambdaContext, load_event

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ["POWERTOOLS_METRICS_NAMESPACE"] = "FlashSaleOrdersTest"


LEVELS = ("unit", "infra", "integration", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test's level is its folder (tests/<level>/...): `pytest -m infra` selects every infra test, and a
    file cannot be left out by forgetting a marker."""
    for item in items:
        level = next((part for part in item.path.parts if part in LEVELS), None)
        if level is None:
            raise pytest.UsageError(f"{item.nodeid}: tests live under tests/<{'|'.join(LEVELS)}>/")
        item.add_marker(getattr(pytest.mark, level))


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def valid_order() -> dict[str, Any]:
    return load_event("order_valid.json")
