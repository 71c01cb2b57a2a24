"""Acknowledging cdk-nag findings: always on the narrowest construct, always with a reason."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """``rule`` is a rule id, or ``Rule[Finding]`` for one finding of a multi-finding rule."""
    if len(reason) < 20:
        raise ValueError(f"acknowledging {rule} needs a real reason")
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))
