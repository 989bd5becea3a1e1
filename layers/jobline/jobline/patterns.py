"""EventBridge event patterns, evaluated in Python.

One rule on the job bus delivers every event to jobline, which then matches it against each
job's bus triggers, so adding a bus trigger is a catalog edit only. Supported, as in
EventBridge: exact values (a list of alternatives), nested objects, prefix, suffix,
equals-ignore-case, wildcard, anything-but, exists and numeric comparisons. An event array
field matches if any of its elements matches.
"""

from __future__ import annotations

import fnmatch
import operator
from typing import Any

_MISSING = object()
_NUMERIC = {"<": operator.lt, "<=": operator.le, "=": operator.eq, ">": operator.gt, ">=": operator.ge}


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    return all(_field_matches(rule, event.get(key, _MISSING)) for key, rule in pattern.items())


def _field_matches(rule: Any, value: Any) -> bool:
    if isinstance(rule, dict):
        return isinstance(value, dict) and matches(rule, value)
    if not isinstance(rule, list):
        raise ValueError(f"pattern values must be lists or objects, got {rule!r}")
    return any(_alternative_matches(alt, value) for alt in rule)


def _alternative_matches(alt: Any, value: Any) -> bool:
    if isinstance(alt, dict) and len(alt) == 1 and "exists" in alt:
        return (value is not _MISSING) == bool(alt["exists"])
    if value is _MISSING:
        return False
    if isinstance(value, list):
        return any(_alternative_matches(alt, v) for v in value)
    if not isinstance(alt, dict):
        return alt == value
    (op, arg), *_ = alt.items()
    if op == "prefix":
        return isinstance(value, str) and value.startswith(arg)
    if op == "suffix":
        return isinstance(value, str) and value.endswith(arg)
    if op == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(arg).lower()
    if op == "wildcard":
        return isinstance(value, str) and fnmatch.fnmatchcase(value, arg)
    if op == "anything-but":
        excluded = arg if isinstance(arg, list) else [arg]
        return not any(_alternative_matches(x, value) for x in excluded)
    if op == "numeric":
        return _numeric(arg, value)
    raise ValueError(f"unsupported pattern operator {op!r}")


def _numeric(conditions: list[Any], value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    pairs = zip(conditions[::2], conditions[1::2], strict=True)
    return all(_NUMERIC[op](value, bound) for op, bound in pairs)


def lookup(event: dict[str, Any], dotted_path: str) -> Any:
    """The value at a dotted path such as `detail.order.id`, or None."""
    value: Any = event
    for part in dotted_path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value
