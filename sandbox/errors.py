"""The sandbox's errors a user can act on."""

from __future__ import annotations


class SandboxError(RuntimeError):
    """A failure the user can act on; printed as one line."""
