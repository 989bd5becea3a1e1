"""CloudFormation properties -> an AWS API's parameters, by botocore's shapes."""

from __future__ import annotations

import json
from typing import Any


def api_params(client: Any, operation: str, props: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation properties (PascalCase) -> the API's parameters, by botocore's input shape.
    Members are matched case-insensitively; properties the API does not take are dropped."""
    shape = client.meta.service_model.operation_model(operation).input_shape
    return _convert(props, shape)


def _convert(value: Any, shape: Any) -> Any:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return value
        members = {name.lower(): name for name in shape.members}
        out = {}
        for key, item in value.items():
            name = members.get(key.lower())
            if name is not None:
                out[name] = _convert(item, shape.members[name])
        return out
    if kind == "list":
        return [_convert(v, shape.member) for v in (value if isinstance(value, list) else [value])]
    if kind == "map":
        return {k: _convert(v, shape.value) for k, v in value.items()}
    if kind in ("integer", "long"):
        return int(value)
    if kind in ("float", "double"):
        return float(value)
    if kind == "boolean":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if kind == "string" and not isinstance(value, str):
        return (
            json.dumps(value)
            if isinstance(value, dict | list)
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )
    return value
