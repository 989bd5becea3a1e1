"""Requests checked against botocore's service model of the operation: botocore's own
ParamValidator (required members, types, `min`), plus what it leaves out: `max`, `enum` and
`pattern` (whole-value match of the Java regex, as AWS matches it)."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

import botocore.session
from botocore.model import OperationModel, Shape
from botocore.validate import ParamValidator, ValidationErrors

from jobline_local.contracts import patterns
from jobline_local.contracts.core import Call, Violation

logger = logging.getLogger(__name__)


@cache
def operation_model(service: str, operation: str) -> OperationModel:
    return botocore.session.get_session().get_service_model(service).operation_model(operation)


class _StrictValidator(ParamValidator):
    VALIDATED_METADATA_ATTRS = ParamValidator.VALIDATED_METADATA_ATTRS | {"max", "pattern", "enum"}

    def _validate_string(self, param: Any, shape: Shape, errors: ValidationErrors, name: str) -> None:
        super()._validate_string(param, shape, errors, name)
        if not isinstance(param, str):
            return
        self._check_max(len(param), shape, errors, name, param)
        enum = shape.metadata.get("enum")
        if enum and param not in enum:
            errors.report(name, "enum", param=param, allowed=enum)
        pattern = shape.metadata.get("pattern")
        if pattern is not None:
            compiled = patterns.compiled(pattern)
            if compiled is None:
                errors.report(name, "untranslatable pattern", param=param, pattern=pattern)
            elif compiled.fullmatch(param) is None:
                errors.report(name, "pattern", param=param, pattern=pattern)

    def _validate_list(self, param: Any, shape: Shape, errors: ValidationErrors, name: str) -> None:
        super()._validate_list(param, shape, errors, name)
        if isinstance(param, list | tuple):
            self._check_max(len(param), shape, errors, name, param)

    def _validate_map(self, param: Any, shape: Shape, errors: ValidationErrors, name: str) -> None:
        super()._validate_map(param, shape, errors, name)
        if isinstance(param, dict):
            if "min" in shape.metadata and len(param) < shape.metadata["min"]:
                errors.report(name, "invalid length", param=param, min_allowed=shape.metadata["min"])
            self._check_max(len(param), shape, errors, name, param)

    def _validate_number(self, param: Any, shape: Shape, errors: ValidationErrors, name: str) -> None:
        if isinstance(param, int | float) and not isinstance(param, bool):
            self._check_max(param, shape, errors, name, param, "invalid range max")

    def _validate_integer(self, param: Any, shape: Shape, errors: ValidationErrors, name: str) -> None:
        super()._validate_integer(param, shape, errors, name)
        self._validate_number(param, shape, errors, name)

    def _validate_long(self, param: Any, shape: Shape, errors: ValidationErrors, name: str) -> None:
        super()._validate_long(param, shape, errors, name)
        self._validate_number(param, shape, errors, name)

    def _validate_double(self, param: Any, shape: Shape, errors: ValidationErrors, name: str) -> None:
        super()._validate_double(param, shape, errors, name)
        self._validate_number(param, shape, errors, name)

    _validate_float = _validate_double

    @staticmethod
    def _check_max(
        value: float, shape: Shape, errors: ValidationErrors, name: str, param: Any, reason: str = "invalid length max"
    ) -> None:
        if "max" in shape.metadata and value > shape.metadata["max"]:
            errors.report(name, reason, param=param, max_allowed=shape.metadata["max"])


def _describe(reason: str, details: dict[str, Any]) -> tuple[str, str]:
    """(rule, the constraint in AWS's words: "Member must ...")."""
    if reason == "missing required field":
        return "required", f"Member '{details['required_name']}' must not be null"
    if reason == "unknown field":
        return "unknown", f"Member '{details['unknown_param']}' is not in the model"
    if reason == "invalid type":
        return "type", f"Member must be of type {', '.join(details['valid_types'])}"
    if reason == "invalid length":
        return "min", f"Member must have length greater than or equal to {details['min_allowed']}"
    if reason == "invalid length max":
        return "max", f"Member must have length less than or equal to {details['max_allowed']}"
    if reason == "invalid range":
        return "min", f"Member must have value greater than or equal to {details['min_allowed']}"
    if reason == "invalid range max":
        return "max", f"Member must have value less than or equal to {details['max_allowed']}"
    if reason == "enum":
        return "enum", f"Member must satisfy enum value set: [{', '.join(details['allowed'])}]"
    if reason == "pattern":
        return "pattern", f"Member must satisfy regular expression pattern: {details['pattern']}"
    if reason == "untranslatable pattern":
        return "pattern", f"Member's pattern {details['pattern']} could not be translated to check it"
    return reason, reason


def _value(details: dict[str, Any]) -> str:
    value = details.get("param", details.get("user_params", ""))
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def violations_of(service: str, operation: str, params: dict[str, Any], root: str = "") -> list[Violation]:
    """Every rule of the operation's input shape that `params` breaks."""
    shape = operation_model(service, operation).input_shape
    if shape is None:
        return []
    errors = _StrictValidator().validate(params, shape)
    found = []
    for reason, name, details in errors._errors:
        member = (root + name).lstrip(".") or "input"
        if reason == "missing required field":
            member = f"{member}.{details['required_name']}" if member != "input" else details["required_name"]
        rule, constraint = _describe(reason, details)
        if reason == "untranslatable pattern":
            logger.warning("contracts: %s.%s %s: %s", service, operation, member, constraint)
        message = f"Value '{_value(details)}' at '{member}' failed to satisfy constraint: {constraint}"
        if reason == "missing required field":
            message = f"Value null at '{member}' failed to satisfy constraint: Member must not be null"
        found.append(Violation(service, operation, member, rule, message))
    return found


def check(call: Call) -> list[Violation]:
    return violations_of(call.service, call.operation, call.params)
