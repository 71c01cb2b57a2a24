"""The runtime's settings: each variable declared once, validated by pydantic-core, errors naming it."""

from __future__ import annotations

import dataclasses

import pytest

from orders.settings import Settings


def test_unset_and_blank_variables_take_the_declared_defaults() -> None:
    s = Settings.from_env({"PAYMENT_SLOTS": "  ", "ORDERS_QUEUE_URL": "https://q"})
    assert (s.payment_slots, s.payment_latency_ms, s.idempotency_ttl_s, s.queue_url) == (5, 3000, 86400, "https://q")
    assert s.declined_tokens == frozenset({"tok_declined"})


def test_values_are_parsed_from_the_environments_strings() -> None:
    s = Settings.from_env({"PAYMENT_SLOTS": "7", "PAYMENT_FAILURE_RATE": "0.25", "PAYMENT_DECLINED_TOKENS": "a, b,"})
    assert (s.payment_slots, s.payment_failure_rate, s.declined_tokens) == (7, 0.25, frozenset({"a", "b"}))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PAYMENT_SLOTS", "0"),
        ("PAYMENT_SLOTS", "five"),
        ("PAYMENT_FAILURE_RATE", "1.5"),
        ("PAYMENT_FAILURE_RATE", "nan"),
        ("IDEMPOTENCY_TTL_S", "59"),
        ("WORKER_CONCURRENCY", "2.5"),
    ],
)
def test_a_bad_value_is_one_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}='{value}': "):
        Settings.from_env({name: value})


def test_each_field_reads_one_variable_of_its_own() -> None:
    names = [f.metadata["env"] for f in dataclasses.fields(Settings)]
    assert len(names) == len(set(names)) == len(dataclasses.fields(Settings))


def test_require_names_the_missing_variable() -> None:
    with pytest.raises(RuntimeError, match="ORDERS_TABLE_NAME"):
        Settings.from_env({}).require("orders_table")
