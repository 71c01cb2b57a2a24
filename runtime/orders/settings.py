"""Runtime settings, read once from the environment contract the stacks set.

Each variable is declared once, as a field of ``Settings``: its name in the environment, its default and
its bounds. ``from_env`` validates them with pydantic-core (pydantic v2's engine, as the order schema in
``domain/models.py`` is), built on first use: importing a handler stays import-only, and pydantic's model
layer is never imported on Lambda's cold path.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


def env(name: str, default: Any = "", *, ge: float | None = None, le: float | None = None) -> Any:
    """A field read from the variable ``name``; blank or unset is ``default``."""
    return dataclasses.field(default=default, metadata={"env": name, "ge": ge, "le": le})


@dataclass(frozen=True)
class Settings:
    topic_arn: str = env("ORDER_EVENTS_TOPIC_ARN")
    queue_url: str = env("ORDERS_QUEUE_URL")
    orders_table: str = env("ORDERS_TABLE_NAME")
    idempotency_table: str = env("IDEMPOTENCY_TABLE_NAME")
    api_auth: str = env("API_AUTH", "none")  # iam | jwt | none: who the customer is (the caller, or the body)
    catalog_table: str = env("CATALOG_TABLE_NAME")  # products and stock shards
    catalog_cache_s: float = env("CATALOG_CACHE_S", 5.0, ge=0.0, le=300.0)  # a price change is seen within this
    payment_slots: int = env("PAYMENT_SLOTS", 5, ge=1)
    payment_latency_ms: int = env("PAYMENT_LATENCY_MS", 3000, ge=0)
    payment_failure_rate: float = env("PAYMENT_FAILURE_RATE", 0.0, ge=0.0, le=1.0)
    declined_tokens: frozenset[str] = env("PAYMENT_DECLINED_TOKENS", frozenset({"tok_declined"}))
    worker_concurrency: int = env("WORKER_CONCURRENCY", 10, ge=1)
    max_queue_depth: int = env("BACKPRESSURE_MAX_QUEUE_DEPTH", 0, ge=0)
    visibility_timeout_s: int = env("QUEUE_VISIBILITY_TIMEOUT_S", 60, ge=1)
    idempotency_ttl_s: int = env("IDEMPOTENCY_TTL_S", 86400, ge=60)
    checkout_key_window_s: int = env("CHECKOUT_KEY_WINDOW_S", 86400, ge=60)  # Idempotency-Key replay window
    require_idempotency_key: bool = env("REQUIRE_IDEMPOTENCY_KEY", False)  # refuse a checkout without one
    reconcile_after_s: int = env("RECONCILE_AFTER_S", 900, ge=1)  # how long non-terminal counts as stuck
    payment_lost_response_share: float = env("PAYMENT_LOST_RESPONSE_SHARE", 0.0, ge=0.0, le=1.0)
    payment_slow_share: float = env("PAYMENT_SLOW_SHARE", 0.0, ge=0.0, le=1.0)  # simulator: 5x slow answers
    payment_outage_file: str = env("PAYMENT_OUTAGE_FILE")  # simulator only: an outage shared by processes
    payment_ledger_path: str = env("PAYMENT_LEDGER_PATH")  # simulator only: a SQLite ledger shared by processes
    connections_table: str = env("CONNECTIONS_TABLE_NAME")  # order tracking: who tracks which order
    websocket_endpoint: str = env("WEBSOCKET_MANAGEMENT_ENDPOINT")  # order tracking: the management (callback) URL

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Validated settings; a bad value is a ValueError naming the variable, the value and the rule."""
        from pydantic_core import ValidationError

        source = os.environ if environ is None else environ
        raw = {
            f.name: source[f.metadata["env"]]
            for f in dataclasses.fields(cls)
            if source.get(f.metadata["env"], "").strip()
        }
        try:
            values = _validator().validate_python(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = next(f.metadata["env"] for f in dataclasses.fields(cls) if f.name == first["loc"][0])
            raise ValueError(f"{name}={source.get(name)!r}: {first['msg']}") from None
        return cls(**values)

    def require(self, *names: str) -> None:
        """Fail early, naming the variable, when an entry point lacks what it needs."""
        by_field = {f.name: f.metadata["env"] for f in dataclasses.fields(self)}
        missing = [by_field[n] for n in names if not getattr(self, n)]
        if missing:
            raise RuntimeError(f"missing environment: {', '.join(missing)}")


@lru_cache(maxsize=1)
def _validator() -> Any:
    """A pydantic-core validator of the fields' types and bounds (lax: the environment holds strings)."""
    from pydantic_core import SchemaValidator, core_schema

    def schema(f: dataclasses.Field[Any]) -> Any:
        bounds = {k: f.metadata[k] for k in ("ge", "le") if f.metadata[k] is not None}
        if f.type == "int":
            return core_schema.int_schema(**bounds)
        if f.type == "bool":
            return core_schema.bool_schema()
        if f.type == "float":
            return core_schema.float_schema(allow_inf_nan=False, **bounds)
        if f.type == "frozenset[str]":
            return core_schema.no_info_before_validator_function(
                lambda raw: [t.strip() for t in raw.split(",") if t.strip()] if isinstance(raw, str) else raw,
                core_schema.frozenset_schema(core_schema.str_schema()),
            )
        return core_schema.str_schema()

    fields = {f.name: core_schema.typed_dict_field(schema(f), required=False) for f in dataclasses.fields(Settings)}
    return SchemaValidator(core_schema.typed_dict_schema(fields))


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()
