"""Idempotent checkout requests: the ``Idempotency-Key`` header, with Stripe's semantics, on Powertools.

The first request with a key runs; its answer (status, body, headers) is stored for the key's window and
replayed to every later request with the same key and the same body, marked ``Idempotent-Replayed: true``.
The same key with another body is refused (``KeyReusedError``, nothing runs); a request while the first is
still running is refused (``RequestInProgressError``). A request that fails (validation, backpressure, a
publish that did not happen) stores nothing, so the client may retry it with the same key. Keys are scoped
to the caller and the route: two callers never share a key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, cast

MAX_KEY_LENGTH = 255
_KEY_RE = re.compile(r"[\x21-\x7e]{1,255}", re.ASCII)  # printable ASCII, no spaces: what a header carries safely


class KeyReusedError(Exception):
    """The key was first used with another request body."""


class RequestInProgressError(Exception):
    """The first request with this key has not answered yet."""


class InvalidKeyError(Exception):
    """The header is not a usable key."""


def check_key(raw: str | None) -> str | None:
    """The key, or None when the header is absent; InvalidKeyError when it is present but unusable."""
    if raw is None:
        return None
    if not _KEY_RE.fullmatch(raw):
        raise InvalidKeyError(f"must be 1-{MAX_KEY_LENGTH} printable ASCII characters without spaces")
    return raw


class CheckoutRequests:
    """Runs a checkout at most once per (route, caller, key) within the window, replaying its answer."""

    def __init__(self, persistence_store: Any, *, window_s: int) -> None:
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

        self.config = IdempotencyConfig(
            event_key_jmespath="[route, caller, key]",
            payload_validation_jmespath="body",
            expires_after_seconds=window_s,
            raise_on_no_idempotency_key=True,
            response_hook=cast(Any, _mark_replayed),
        )

        def run(request: dict[str, Any], work: Callable[[], dict[str, Any]], answered: list[Any]) -> dict[str, Any]:
            answered.append(work())
            return answered[-1]

        self._run = idempotent_function(
            run,
            data_keyword_argument="request",
            persistence_store=persistence_store,
            config=self.config,
            key_prefix="orders.checkout",
        )

    def register_lambda_context(self, context: Any) -> None:
        """An IN_PROGRESS record expires with the invocation, so a killed request does not block its key."""
        self.config.register_lambda_context(context)

    def run(
        self, *, route: str, caller: str, key: str, body: Any, work: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        """``work()``'s answer, or the stored answer of the first request with this key."""
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyPersistenceLayerError,
            IdempotencyValidationError,
        )

        answered: list[Any] = []
        try:
            return self._run(
                request={"route": route, "caller": caller, "key": key, "body": body}, work=work, answered=answered
            )
        except IdempotencyValidationError as exc:
            raise KeyReusedError(key) from exc
        except IdempotencyAlreadyInProgressError as exc:
            raise RequestInProgressError(key) from exc
        except IdempotencyPersistenceLayerError:
            if answered:
                # The checkout ran but its answer could not be stored: give the client the real answer
                # (a 5xx here could hide a charge). A retry once the IN_PROGRESS record has expired
                # would run again; that is the one case the key cannot cover.
                return dict(answered[-1])
            raise


def _mark_replayed(response: Any, data_record: Any) -> Any:
    if isinstance(response, dict):
        response = {**response, "headers": {**(response.get("headers") or {}), "Idempotent-Replayed": "true"}}
    return response
