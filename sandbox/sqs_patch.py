"""Placeholder replaced below."""


def apply() -> None:
    return None
