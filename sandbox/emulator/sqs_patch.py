"""Keeps moto's SQS flat in queue depth for standard queues, so the sandbox measures the system.

moto 5.2.5 spends O(queue depth) Python work on every call: ``get_queue_attributes``
rebuilds every attribute (three full scans) up to three times per requested name,
the retention check in ``receive_message`` does that for every message returned,
and delete / change-visibility scan every message's receipt-handle history.
This module replaces exactly those pieces for standard queues:

* the visible / not-visible / delayed counts and the visible list take one pass
  with one clock read;
* ``get_queue_attributes`` builds the attributes once;
* the retention check reads the queue's retention period directly;
* receipt handles are indexed, so delete and change-visibility find their
  message without a scan.

FIFO queues keep moto's own code. The replaced functions are fingerprinted:
if moto's source for any of them differs from what was reviewed, ``apply``
refuses rather than patching code it has not seen.
"""

from __future__ import annotations

import hashlib
import inspect
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sandbox.emulator.moto_fixes import check_version

# sha256 of the reviewed moto 5.2.5 sources of everything replaced below.
FINGERPRINTS = {
    "Queue.messages": "03a531dbcbcf9aee2e61c7254c08946a499f5c57f2447a8f2e534aa85b067dea",
    "Queue.approximate_number_of_messages_not_visible": (
        "5dbecc4dda174358d2aefa96e4b769def47fd6bb2c315241c451e8518c3fabab"
    ),
    "Queue.approximate_number_of_messages_delayed": "c3c1dadb0c42ed5f8f5e1fddc8384de67db2df9a4055504f10903bd0b55e8d2f",
    "Queue.delete_message": "fa6fd5b9bd2cafb4aaacd79da7fc656e513e1513197c2939ff002f9ebfd4be46",
    "Message.mark_received": "98e7ec115c7fcb9f34b06f42cb88a96ee9b595870bdad0105e25c4d8df462c97",
    "SQSBackend.get_queue_attributes": "58417223da457b5a0aac5ccc31b6646ed9b22c3b276a0f0d9fd5f3f13bd797ec",
    "SQSBackend.is_message_valid_based_on_retention_period": (
        "cca23b94a5f3af9d9c5af1c09ee5e615017bdf6bd032301cb321c06c7e595d4b"
    ),
    "SQSBackend.change_message_visibility": "f0e9df5f66627114c9249020675ff5accee62a9cab5e797442538c13ac593b99",
}


class UpstreamDrift(RuntimeError):
    """moto's code for a replaced function is not the code this patch was written against."""


def _targets() -> dict[str, tuple[Any, str, Callable[..., Any]]]:
    from moto.sqs.models import Message, Queue, SQSBackend

    def prop(cls: Any, name: str) -> Callable[..., Any]:
        return getattr(cls, name).fget  # type: ignore[no-any-return]

    return {
        "Queue.messages": (Queue, "messages", prop(Queue, "messages")),
        "Queue.approximate_number_of_messages_not_visible": (
            Queue,
            "approximate_number_of_messages_not_visible",
            prop(Queue, "approximate_number_of_messages_not_visible"),
        ),
        "Queue.approximate_number_of_messages_delayed": (
            Queue,
            "approximate_number_of_messages_delayed",
            prop(Queue, "approximate_number_of_messages_delayed"),
        ),
        "Queue.delete_message": (Queue, "delete_message", Queue.delete_message),
        "Message.mark_received": (Message, "mark_received", Message.mark_received),
        "SQSBackend.get_queue_attributes": (SQSBackend, "get_queue_attributes", SQSBackend.get_queue_attributes),
        "SQSBackend.is_message_valid_based_on_retention_period": (
            SQSBackend,
            "is_message_valid_based_on_retention_period",
            SQSBackend.is_message_valid_based_on_retention_period,
        ),
        "SQSBackend.change_message_visibility": (
            SQSBackend,
            "change_message_visibility",
            SQSBackend.change_message_visibility,
        ),
    }


def fingerprint(func: Callable[..., Any]) -> str:
    return hashlib.sha256(inspect.getsource(func).encode()).hexdigest()


def check_fingerprints() -> None:
    for name, (_, _, original) in _targets().items():
        if fingerprint(original) != FINGERPRINTS[name]:
            raise UpstreamDrift(f"moto's {name} changed since the SQS patch was reviewed; refusing to patch it")


# ----------------------------------------------------------------------------- replacements
_RECEIPTS: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def _now_ms() -> float:
    from moto.core.utils import unix_time_millis

    return float(unix_time_millis())


def _messages(self: Any) -> list[Any]:
    if self.fifo_queue:
        return _ORIGINALS["Queue.messages"](self)  # type: ignore[no-any-return]
    now = _now_ms()
    return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]


def _not_visible(self: Any) -> int:
    if self.fifo_queue:
        return _ORIGINALS["Queue.approximate_number_of_messages_not_visible"](self)  # type: ignore[no-any-return]
    now = _now_ms()
    return sum(1 for m in self._messages if not now > m.visible_at)


def _delayed(self: Any) -> int:
    if self.fifo_queue:
        return _ORIGINALS["Queue.approximate_number_of_messages_delayed"](self)  # type: ignore[no-any-return]
    now = _now_ms()
    return sum(1 for m in self._messages if now < m.delayed_until)


def _mark_received(self: Any, visibility_timeout: int | None = None) -> None:
    _ORIGINALS["Message.mark_received"](self, visibility_timeout)
    _RECEIPTS[self.receipt_handle] = self


def _find(queue: Any, receipt_handle: str) -> Any:
    message = _RECEIPTS.get(receipt_handle)
    if message is not None and message in queue._messages:
        return message
    return None


def _delete_message(self: Any, receipt_handle: str) -> None:
    if self.fifo_queue:
        return _ORIGINALS["Queue.delete_message"](self, receipt_handle)  # type: ignore[no-any-return]
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    if receipt_handle in self.deleted_messages:
        return None
    message = _find(self, receipt_handle)
    if message is None:
        raise ReceiptHandleIsInvalid()
    self.pending_messages.discard(message)
    self.deleted_messages.update(message.all_receipt_handles)
    self._messages.remove(message)
    return None


def _get_queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
    queue = self.get_queue(queue_name)
    if queue.fifo_queue or not attribute_names:
        return _ORIGINALS["SQSBackend.get_queue_attributes"](self, queue_name, attribute_names)  # type: ignore[no-any-return]
    from moto.sqs.exceptions import InvalidAttributeName

    valid = ["All", *queue.BASE_ATTRIBUTES, *queue.FIFO_ATTRIBUTES, *queue.KMS_ATTRIBUTES]
    invalid = next((name for name in attribute_names if name not in valid), None)
    if invalid or invalid == "":
        raise InvalidAttributeName(invalid)
    everything = queue.attributes  # once, not three times per name
    if "All" in attribute_names:
        return everything  # type: ignore[no-any-return]
    return {name: everything[name] for name in attribute_names if everything.get(name) is not None}


def _retention_ok(self: Any, queue_name: str, message: Any) -> bool:
    from moto.core.utils import unix_time

    queue = self.get_queue(queue_name)
    if queue.fifo_queue:
        return _ORIGINALS["SQSBackend.is_message_valid_based_on_retention_period"](self, queue_name, message)  # type: ignore[no-any-return]
    retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
    return bool(retain_until > unix_time())


def _change_visibility(self: Any, queue_name: str, receipt_handle: str, visibility_timeout: int) -> None:
    queue = self.get_queue(queue_name)
    if queue.fifo_queue:
        return _ORIGINALS["SQSBackend.change_message_visibility"](self, queue_name, receipt_handle, visibility_timeout)  # type: ignore[no-any-return]
    from moto.sqs.exceptions import InvalidParameterValue, ReceiptHandleIsInvalid

    message = _find(queue, receipt_handle)
    if message is None:
        raise ReceiptHandleIsInvalid
    given = _now_ms() + int(visibility_timeout) * 1000
    if given - message.sent_timestamp > 43200 * 1000:
        raise InvalidParameterValue(
            f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. Reason: Total "
            "VisibilityTimeout for the message is beyond the limit [43200 seconds]"
        )
    message.change_visibility(visibility_timeout)
    if message.visible and message in queue.pending_messages:
        queue.pending_messages.remove(message)
    return None


_REPLACEMENTS: dict[str, Callable[..., Any]] = {
    "Queue.messages": _messages,
    "Queue.approximate_number_of_messages_not_visible": _not_visible,
    "Queue.approximate_number_of_messages_delayed": _delayed,
    "Queue.delete_message": _delete_message,
    "Message.mark_received": _mark_received,
    "SQSBackend.get_queue_attributes": _get_queue_attributes,
    "SQSBackend.is_message_valid_based_on_retention_period": _retention_ok,
    "SQSBackend.change_message_visibility": _change_visibility,
}
_ORIGINALS: dict[str, Callable[..., Any]] = {}
_PROPERTIES = {
    "Queue.messages",
    "Queue.approximate_number_of_messages_not_visible",
    "Queue.approximate_number_of_messages_delayed",
}


def apply() -> None:
    """Patch moto's SQS in this process (call before the server starts)."""
    if _ORIGINALS:
        return
    check_version()
    check_fingerprints()
    for name, (owner, attr, original) in _targets().items():
        _ORIGINALS[name] = original
        replacement = _REPLACEMENTS[name]
        setattr(owner, attr, property(replacement) if name in _PROPERTIES else replacement)


def remove() -> None:
    """Restore moto's own code (tests run the same semantics with and without the patch)."""
    for name, (owner, attr, _) in _targets().items():
        if name in _ORIGINALS:
            original = _ORIGINALS[name]
            setattr(owner, attr, property(original) if name in _PROPERTIES else original)
    _ORIGINALS.clear()


@contextmanager
def patched() -> Iterator[None]:
    apply()
    try:
        yield
    finally:
        remove()
