"""IAM evaluation of a resource policy for a service principal, as far as SNS delivery needs it: an
explicit deny wins, then an allow is needed; the Not- elements, the negated and ...IfExists operators and
missing condition keys follow IAM's rules."""

from __future__ import annotations

import fnmatch
import logging
from typing import Any

log = logging.getLogger("sandbox.emulator")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _principal_matches(principal: Any, service: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    return "*" in _as_list(principal.get("AWS", [])) or service in _as_list(principal.get("Service", []))


def _action_matches(actions: Any, action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), str(a).lower()) for a in _as_list(actions))


def _resource_matches(resources: Any, arn: str) -> bool:
    return any(fnmatch.fnmatchcase(arn, str(r)) for r in _as_list(resources))


def _applies(st: dict[str, Any], service: str, action: str, resource: str) -> bool:
    """Principal, action and resource match (each element or its Not- form)."""
    if "NotPrincipal" in st:
        principal_ok = not _principal_matches(st["NotPrincipal"], service)
    else:
        principal_ok = _principal_matches(st.get("Principal"), service)
    if "NotAction" in st:
        action_ok = not _action_matches(st["NotAction"], action)
    else:
        action_ok = _action_matches(st.get("Action", []), action)
    if "NotResource" in st:
        resource_ok = not _resource_matches(st["NotResource"], resource)
    else:  # a Lambda permission names no resource beyond its function
        resource_ok = "Resource" not in st or _resource_matches(st["Resource"], resource)
    return principal_ok and action_ok and resource_ok


_OPERATORS = {
    "StringEquals": lambda actual, wanted: actual == wanted,
    "StringEqualsIgnoreCase": lambda actual, wanted: actual.lower() == wanted.lower(),
    "ArnEquals": lambda actual, wanted: actual == wanted,
    "StringLike": lambda actual, wanted: fnmatch.fnmatchcase(actual, wanted),
    "ArnLike": lambda actual, wanted: fnmatch.fnmatchcase(actual, wanted),
    "Bool": lambda actual, wanted: actual.lower() == wanted.lower(),
}
_NEGATED = {"StringNotEquals": "StringEquals", "ArnNotEquals": "ArnEquals", "StringNotLike": "StringLike"}
_NEGATED |= {"ArnNotLike": "ArnLike", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase"}


def _condition_holds(operator: str, key: str, wanted: Any, context: dict[str, str]) -> bool | None:
    """IAM's rules: several values of one key are ORed; a key absent from the request makes a condition
    false, a negated one true, an ...IfExists one true. None for an operator this evaluator does not know."""
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    negated = base in _NEGATED
    compare = _OPERATORS.get(_NEGATED.get(base, base))
    if compare is None:
        return None
    actual = context.get(key.lower())
    if actual is None:
        return if_exists or negated
    matched = any(compare(actual, str(w)) for w in _as_list(wanted))
    return not matched if negated else matched


def _conditions_hold(conditions: dict[str, Any] | None, context: dict[str, str]) -> bool | None:
    """All operators and keys ANDed; None if one cannot be evaluated here."""
    results = [
        _condition_holds(operator, key, wanted, context)
        for operator, tests in (conditions or {}).items()
        for key, wanted in tests.items()
    ]
    if False in results:
        return False
    return None if None in results else True


def policy_allows(
    policy: dict[str, Any] | None, *, service: str, action: str, resource: str, context: dict[str, str]
) -> bool:
    """IAM evaluation of a resource policy for a service principal: an explicit deny wins, then an allow is
    needed. A statement whose conditions cannot be evaluated here is logged and never allows; as a Deny it
    is not applied (the deploy rules and cfn-lint, not the emulator, judge such policies)."""
    allowed = False
    context = {k.lower(): v for k, v in context.items()}
    for st in _as_list((policy or {}).get("Statement", [])):
        if not _applies(st, service, action, resource):
            continue
        holds = _conditions_hold(st.get("Condition"), context)
        if holds is None:
            log.warning("policy: cannot evaluate the conditions of %s; treated as not matching", st)
        elif holds and st.get("Effect") == "Deny":
            return False
        elif holds and st.get("Effect") == "Allow":
            allowed = True
    return allowed
