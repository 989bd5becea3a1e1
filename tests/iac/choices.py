"""Follows an ASL definition's Choice states for given data, to enumerate every status a backend
can send through them (the integration tests run the definition itself, on moto's engine, for the
ones a script can produce). Only the operators the definition uses; any other one raises, so the
walk cannot quietly differ from Step Functions.
https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html
"""

from __future__ import annotations

import re
from typing import Any

_MISSING = object()


def value_at(data: Any, path: str) -> Any:
    if not path.startswith("$."):
        raise NotImplementedError(f"path {path!r}")
    for part in path[2:].split("."):
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data


def _string_matches(pattern: str, value: str) -> bool:
    """StringMatches: `*` is any run of characters, `\\*` a literal star; case-sensitive."""
    parts = re.split(r"(?<!\\)\*", pattern)
    regex = ".*".join(re.escape(p.replace("\\*", "*")) for p in parts)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def matches(rule: dict[str, Any], data: Any) -> bool:
    if "And" in rule:
        return all(matches(r, data) for r in rule["And"])
    if "Or" in rule:
        return any(matches(r, data) for r in rule["Or"])
    if "Not" in rule:
        return not matches(rule["Not"], data)
    value = value_at(data, rule["Variable"])
    (operator,) = (k for k in rule if k not in ("Variable", "Next"))
    expected = rule[operator]
    if operator == "IsPresent":
        return (value is not _MISSING) is expected
    if value is _MISSING:
        # Step Functions fails the execution (States.Runtime) on a comparison with no value.
        raise LookupError(f"{rule['Variable']} is not in the data: guard it with IsPresent")
    if operator == "StringEquals":
        return isinstance(value, str) and value == expected
    if operator == "StringMatches":
        return isinstance(value, str) and _string_matches(expected, value)
    if operator == "BooleanEquals":
        return isinstance(value, bool) and value is expected
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if operator == "NumericEquals":
        return number and value == expected
    if operator == "NumericLessThanPath":
        return number and value < value_at(data, expected)
    raise NotImplementedError(f"Choice operator {operator}")


def follow(asl: dict[str, Any], start: str, data: Any) -> str:
    """The first state that is not a Choice, from `start`, for `data`."""
    name = start
    while (state := asl["States"][name])["Type"] == "Choice":
        name = next((c["Next"] for c in state["Choices"] if matches(c, data)), None) or state["Default"]
    return name
