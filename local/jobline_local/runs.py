"""Reading the run table generically (its rows are written by jobline's functions and state
machine): every item whose key starts with RUN#, as plain Python values."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

TERMINAL = {"SUCCEEDED", "FAILED", "TIMEOUT", "STOPPED"}
_deserializer = TypeDeserializer()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(v) for v in value]
    return value


def read_runs(dynamodb: Any, table: str, attributes: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The run rows, whole, or only `attributes` (with `pk`, `record_type` and `created_at`)."""
    rows: list[dict[str, Any]] = []
    projection: dict[str, Any] = {}
    if attributes:
        wanted = dict.fromkeys(("pk", "record_type", "created_at", *attributes))
        names = {f"#a{i}": name for i, name in enumerate(wanted)}
        projection = {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True, **projection):
        for item in page.get("Items", []):
            row = {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}
            if str(row.get("pk", "")).startswith("RUN#") or row.get("record_type") == "RUN":
                rows.append(row)
    return sorted(rows, key=lambda r: str(r.get("created_at", "")))


def _time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def duration_seconds(row: dict[str, Any]) -> float | None:
    start, end = _time(row.get("created_at")), _time(row.get("ended_at") or row.get("updated_at"))
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def attempts_of(row: dict[str, Any]) -> int:
    attempts = row.get("attempts")
    if isinstance(attempts, dict) and attempts:
        return len(attempts)
    return int(row.get("attempt") or 0)


def trigger_of(row: dict[str, Any]) -> str:
    trigger = row.get("trigger")
    if isinstance(trigger, dict):
        return str(trigger.get("type", "?"))
    return str(trigger or "?")


def is_final(row: dict[str, Any]) -> bool:
    return row.get("status") in TERMINAL
