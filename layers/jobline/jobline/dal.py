"""All DynamoDB access to the run table.

Items: a run is `pk = RUN#<run id>`; a job's concurrency slots are `pk = SLOT#<job>` (taken and
released by the state machine; an operator's stop releases its run's slot). Lambda writes use
optimistic concurrency on `version`; the state machine's direct DynamoDB writes bump the same
counter, so neither overwrites the other. A write that lost the race reads the row again after an
exponential backoff with full jitter (https://aws.amazon.com/builders-library/timeouts-retries-and-backoff-with-jitter/),
for as long as its caller can wait.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from decimal import Decimal
from functools import cached_property
from typing import Any

from botocore.exceptions import ClientError

from jobline.errors import RowContended


class _Codec:
    """boto3's DynamoDB type serializer and deserializer, built on first use: importing boto3 is the
    largest part of a handler's cold import, and it is needed only once the table is used."""

    @cached_property
    def _boto3(self) -> tuple[Any, Any]:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        return TypeSerializer(), TypeDeserializer()

    def serialize(self, value: Any) -> dict[str, Any]:
        return self._boto3[0].serialize(value)

    def deserialize(self, value: dict[str, Any]) -> Any:
        return self._boto3[1].deserialize(value)


_serializer = _deserializer = _Codec()
# Backoff after the n-th lost race: uniform in [0, min(CAP, BASE * 2**n)] seconds.
BACKOFF_BASE_SECONDS = 0.02
BACKOFF_CAP_SECONDS = 1.0
# How long an update keeps trying when its caller gives no budget of its own.
DEFAULT_PATIENCE_SECONDS = 10.0


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


def patience(seconds: float) -> Callable[[], float]:
    """Seconds left of a budget of `seconds` from now."""
    deadline = time.monotonic() + seconds
    return lambda: deadline - time.monotonic()


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
        self,
        run_id: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        time_left: Callable[[], float] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Apply `change` to the row under optimistic concurrency. Returns (before, after), or
        None when the run does not exist. A lost race is retried after a backoff while
        `time_left()` (seconds; default DEFAULT_PATIENCE_SECONDS from now) has room for it;
        then RowContended."""
        time_left = time_left or patience(DEFAULT_PATIENCE_SECONDS)
        conflicts = 0
        while True:
            row = self.get_run(run_id)
            if row is None:
                return None
            new = change(row)
            if new == row:
                return row, row
            version = int(row.get("version", 0))
            # A row no writer has versioned yet (no `version`) must still have none.
            expected = {"ConditionExpression": "attribute_not_exists(#v)"}
            if "version" in row:
                expected = {"ConditionExpression": "#v = :v", "ExpressionAttributeValues": {":v": {"N": str(version)}}}
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item=_to_item({**new, "version": version + 1}),
                    ExpressionAttributeNames={"#v": "version"},
                    **expected,
                )
            except ClientError as error:
                if not _conditional_failed(error):
                    raise
                # Someone else moved the row: wait, read it again and re-apply.
                delay = random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**conflicts))  # noqa: S311 (jitter, not secrecy)
                conflicts += 1
                if delay >= time_left():
                    raise RowContended(f"run {run_id}: still contended after {conflicts} concurrent updates") from None
                time.sleep(delay)
                continue
            return row, new

    def query_runs(
        self,
        index: str,
        partition: tuple[str, str],
        *,
        limit: int,
        since: str | None = None,
        status: str | None = None,
        start_key: dict[str, str] | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, str] | None]:
        """Runs of one partition (attribute, value) of a run index, newest first, created at `since`
        or later, in `status` if given (a filter). Pages until `limit` rows or the end. Returns the
        rows and, when more may follow, the index key of the last row (to start the next page at)."""
        attribute, value = partition
        names = {"#k": attribute}
        values = {":k": {"S": value}}
        condition = "#k = :k"
        if since:
            condition += " AND #c >= :since"
            names["#c"] = "created_at"
            values[":since"] = {"S": since}
        params: dict[str, Any] = {"TableName": self._table, "IndexName": index, "ScanIndexForward": False}
        if status:
            params["FilterExpression"] = "#s = :s"
            names["#s"] = "status"
            values[":s"] = {"S": status}
        params.update(
            KeyConditionExpression=condition, ExpressionAttributeNames=names, ExpressionAttributeValues=values
        )
        exclusive = {k: {"S": v} for k, v in start_key.items()} if start_key else None
        rows: list[dict[str, Any]] = []
        while True:
            room = limit - len(rows)
            page_params = {**params, **({"ExclusiveStartKey": exclusive} if exclusive else {})}
            if not status:  # unfiltered, every item read is returned: read no more than needed
                page_params["Limit"] = room
            page = self._client.query(**page_params)
            items = page.get("Items", [])
            rows.extend(_from_item(item) for item in items[:room])
            exclusive = page.get("LastEvaluatedKey")
            if len(rows) == limit or exclusive is None:
                more = len(items) > room or exclusive is not None
                break
        next_key = {k: rows[-1][k] for k in ("pk", attribute, "created_at")} if more and rows else None
        return rows, next_key

    def slot_holders(self, job: str) -> list[str]:
        """The run ids holding one of the job's concurrency slots (AcquireSlot's set)."""
        item = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": f"SLOT#{job}"}},
            ConsistentRead=True,
            ProjectionExpression="#h",
            ExpressionAttributeNames={"#h": "holders"},
        ).get("Item", {})
        return sorted(item.get("holders", {}).get("SS", []))

    def release_slot(self, job: str, run_id: str) -> None:
        """Take the run out of its job's concurrency slot holders (idempotent, like ReleaseSlot)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"SLOT#{job}"}},
                UpdateExpression="DELETE #h :run",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#h": "holders"},
                ExpressionAttributeValues={":run": {"SS": [run_id]}},
            )
        except ClientError as error:
            if not _conditional_failed(error):  # no slot item: the job never had a run holding one
                raise
