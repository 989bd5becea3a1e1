"""All DynamoDB access to the run table.

Items: a run is `pk = RUN#<run id>`; a job's concurrency slots are `pk = SLOT#<job>` (written by
the state machine only). Lambda writes use optimistic concurrency on `version`; the state
machine's direct DynamoDB writes bump the same counter, so neither overwrites the other.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
MAX_CONFLICT_RETRIES = 8


def run_key(run_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"RUN#{run_id}"}}


def _to_item(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in row.items() if v is not None}


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


def _conditional_failed(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


class RunTable:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def create_run(self, row: dict[str, Any]) -> bool:
        """Write a new run row. False when the run already exists (a duplicate trigger)."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_to_item({"pk": f"RUN#{row['run_id']}", **row}),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        item = self._client.get_item(TableName=self._table, Key=run_key(run_id), ConsistentRead=True).get("Item")
        return _from_item(item) if item else None

    def update_run(
        self, run_id: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Apply `change` to the row under optimistic concurrency. Returns (before, after), or
        None when the run does not exist."""
        for _ in range(MAX_CONFLICT_RETRIES):
            row = self.get_run(run_id)
            if row is None:
                return None
            new = change(row)
            if new == row:
                return row, row
            version = int(row.get("version", 0))
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item=_to_item({**new, "version": version + 1}),
                    ConditionExpression="#v = :v",
                    ExpressionAttributeNames={"#v": "version"},
                    ExpressionAttributeValues={":v": {"N": str(version)}},
                )
            except ClientError as error:
                if _conditional_failed(error):
                    continue  # someone else moved the row: read it again and re-apply
                raise
            return row, new
        raise RuntimeError(f"run {run_id}: gave up after {MAX_CONFLICT_RETRIES} concurrent updates")
