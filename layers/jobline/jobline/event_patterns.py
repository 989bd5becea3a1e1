"""The EventBridge event patterns a bus trigger may declare, checked when the catalog loads.

jobline never matches events itself: each bus trigger becomes an EventBridge rule (make generate),
so EventBridge matches. This module only refuses, with the path and the rule broken, what
EventBridge would refuse at PutRule or what the local stack (moto's matcher, tested against
EventBridge's documented examples in tests/local/test_delivery.py) cannot evaluate as EventBridge
does. Operators, from the EventBridge user guide, "Comparison operators for use in event patterns"
(docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html):
exact values (string, number, true/false, null), prefix / suffix (optionally with
equals-ignore-case), equals-ignore-case, wildcard, anything-but (a value, a list of strings or of
numbers, or a prefix, suffix, equals-ignore-case or wildcard), numeric, exists, cidr, and `$or`.
"""

from __future__ import annotations

import ipaddress
import json
import math
from typing import Any

# "Numeric matching ... is limited to values between -1.0e9 and +1.0e9 inclusive" (content filtering).
NUMERIC_LIMIT = 1.0e9
# EventBridge quotas (eb-quota.html): "Event pattern size: 2048 characters".
MAX_PATTERN_CHARS = 2048
LOWER_BOUNDS, UPPER_BOUNDS = {">", ">="}, {"<", "<="}
TOP_LEVEL_FIELDS = {"source", "detail-type", "detail"}
# Every operator a bus trigger may use; tests/local/test_delivery.py checks each on the local stack.
OPERATORS = frozenset(
    {"prefix", "suffix", "equals-ignore-case", "wildcard", "anything-but", "numeric", "exists", "cidr", "$or"}
)
# CloudFormation reads a mapping with one of these keys as an intrinsic function, not as data.
CFN_INTRINSIC_KEYS = {"Ref", "Condition"}


class PatternError(ValueError):
    """A pattern EventBridge or the local stack would not evaluate as written; says where and why."""


def check(pattern: Any) -> None:
    """Raise PatternError for the first thing in `pattern` that is not a supported event pattern."""
    if not isinstance(pattern, dict) or not pattern:
        raise PatternError("a bus trigger needs a non-empty pattern (an object)")
    _object(pattern, "pattern", top_level=True)
    size = len(json.dumps(pattern, separators=(",", ":")))
    if size > MAX_PATTERN_CHARS:
        raise PatternError(f"pattern is {size} characters, over EventBridge's {MAX_PATTERN_CHARS}")


def uses_wildcard(pattern: Any) -> bool:
    """Whether the pattern counts against EventBridge's 30 rules with wildcards per bus."""
    if isinstance(pattern, dict):
        return "wildcard" in pattern or any(uses_wildcard(v) for v in pattern.values())
    if isinstance(pattern, list):
        return any(uses_wildcard(v) for v in pattern)
    return False


def _object(node: dict[str, Any], where: str, top_level: bool = False) -> None:
    for key, value in node.items():
        here = f"{where}.{key}"
        if key in CFN_INTRINSIC_KEYS or key.startswith("Fn::"):
            raise PatternError(f"{here}: CloudFormation would read the field name {key!r} as an intrinsic function")
        if key == "$or":
            _or(value, here, top_level)
            continue
        if top_level and key not in TOP_LEVEL_FIELDS:
            raise PatternError(f"{here}: a bus trigger may only match {sorted(TOP_LEVEL_FIELDS)} (and $or of them)")
        if isinstance(value, dict):
            if not value:
                raise PatternError(f"{here}: an object in a pattern cannot be empty")
            _object(value, here)
        elif isinstance(value, list):
            _matchers(value, here)
        else:
            raise PatternError(f"{here}: must be an object or a list of values, got {json.dumps(value)}")


def _or(value: Any, where: str, top_level: bool) -> None:
    if not isinstance(value, list) or len(value) < 2 or not all(isinstance(v, dict) and v for v in value):
        raise PatternError(f"{where}: $or takes a list of at least two non-empty objects")
    for index, alternative in enumerate(value):
        _object(alternative, f"{where}[{index}]", top_level)


def _matchers(values: list[Any], where: str) -> None:
    if not values:
        raise PatternError(f"{where}: an empty list matches nothing (EventBridge refuses it)")
    for index, value in enumerate(values):
        here = f"{where}[{index}]"
        if isinstance(value, dict):
            _operator(value, here)
        elif isinstance(value, list):
            raise PatternError(f"{here}: a list inside a list is not a pattern value")
        else:
            _literal(value, here)


def _literal(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise PatternError(f"{where}: {value} is not a JSON number")
    if not (value is None or isinstance(value, str | bool | int | float)):
        raise PatternError(f"{where}: {value!r} is not a JSON value")


def _string(value: Any, where: str, op: str) -> None:
    if not isinstance(value, str):
        raise PatternError(f"{where}: {op} takes a string, got {json.dumps(value)}")


def _operator(node: dict[str, Any], where: str) -> None:
    if len(node) != 1:
        raise PatternError(f"{where}: an operator object has exactly one operator, got {sorted(node)}")
    ((op, arg),) = node.items()
    here = f"{where}.{op}"
    if op in {"prefix", "suffix"}:
        if isinstance(arg, dict):
            if set(arg) != {"equals-ignore-case"}:
                raise PatternError(f"{here}: takes a string or {{'equals-ignore-case': string}}")
            _string(arg["equals-ignore-case"], here, f"{op} equals-ignore-case")
        else:
            _string(arg, here, op)
    elif op == "equals-ignore-case":
        _string(arg, here, op)
    elif op == "wildcard":
        _wildcard(arg, here)
    elif op == "anything-but":
        _anything_but(arg, here)
    elif op == "numeric":
        _numeric(arg, here)
    elif op == "exists":
        if not isinstance(arg, bool):
            raise PatternError(f"{here}: takes true or false")
    elif op == "cidr":
        _cidr(arg, here)
    else:
        supported = ", ".join(sorted(OPERATORS - {"$or"}))
        raise PatternError(f"{here}: {op!r} is not an EventBridge pattern operator jobline supports ({supported})")


def _wildcard(arg: Any, where: str) -> None:
    _string(arg, where, "wildcard")
    # "Matching using wildcards": `*` matches any characters; `\*` and `\\` are the only escapes;
    # consecutive wildcards are refused by EventBridge.
    if "**" in arg.replace("\\\\", "").replace("\\*", ""):
        raise PatternError(f"{where}: consecutive wildcard characters (**) are not allowed")
    index = 0
    while index < len(arg):
        if arg[index] == "\\":
            if arg[index + 1 : index + 2] not in {"*", "\\"}:
                raise PatternError(f"{where}: a backslash may only escape * or \\ in a wildcard")
            index += 2
        else:
            index += 1


def _anything_but(arg: Any, where: str) -> None:
    if isinstance(arg, dict):
        if len(arg) != 1 or next(iter(arg)) not in {"prefix", "suffix", "equals-ignore-case", "wildcard"}:
            raise PatternError(f"{where}: nests one of prefix, suffix, equals-ignore-case or wildcard")
        ((op, inner),) = arg.items()
        if op == "wildcard":
            _wildcard(inner, f"{where}.wildcard")
        else:
            _string(inner, f"{where}.{op}", f"anything-but {op}")
    elif isinstance(arg, list):
        kinds = {"string" if isinstance(v, str) else "number" for v in arg if not isinstance(v, bool)}
        plain = all(isinstance(v, str) or _is_number(v) for v in arg)
        if not arg or not plain or len(kinds) != 1:
            raise PatternError(f"{where}: takes a non-empty list of only strings or only numbers")
        for index, value in enumerate(arg):
            if _is_number(value):
                _bounded(value, f"{where}[{index}]")
    elif isinstance(arg, str):
        pass
    elif _is_number(arg):
        _bounded(arg, where)
    else:
        raise PatternError(f"{where}: takes a string, a number, a list of either, or a nested prefix/suffix")


def _numeric(arg: Any, where: str) -> None:
    shape = "takes [op, number] or a range [> or >=, low, < or <=, high]"
    if not isinstance(arg, list) or len(arg) not in (2, 4):
        raise PatternError(f"{where}: {shape}")
    ops, numbers = arg[::2], arg[1::2]
    if not all(op in {"<", "<=", "=", ">", ">="} for op in ops) or not all(_is_number(n) for n in numbers):
        raise PatternError(f"{where}: {shape}")
    if len(ops) == 2 and not (ops[0] in LOWER_BOUNDS and ops[1] in UPPER_BOUNDS and numbers[0] < numbers[1]):
        raise PatternError(f"{where}: a range is a lower bound then a greater upper bound ({shape})")
    for number in numbers:
        _bounded(number, where)


def _cidr(arg: Any, where: str) -> None:
    _string(arg, where, "cidr")
    try:
        ipaddress.ip_network(arg, strict=True)
    except ValueError as exc:
        raise PatternError(f"{where}: {arg!r} is not a CIDR block ({exc})") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _bounded(value: float, where: str) -> None:
    if abs(value) > NUMERIC_LIMIT:
        raise PatternError(f"{where}: {value} is outside EventBridge's numeric range of -1e9..1e9")
