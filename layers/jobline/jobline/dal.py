"""All DynamoDB access to the run table.

Items: a run is its hot row `pk = RUN#<run id>` (status, attempts, times: small, so each write is
one write unit) and its cold data `pk = RUNDATA#<run id>` (trigger event, arguments, retry_of:
written once before the row, never updated); a job's concurrency slots are `pk = SLOT#<job>` (taken
and released by the state machine; an operator's stop releases its run's slot). The indexes hold
keys only: a listing queries keys and reads the page's rows with BatchGetItem. Lambda writes use
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
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from jobline.errors import RowContended

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
# Backoff after the n-th lost race: uniform in [0, min(CAP, BASE * 2**n)] seconds.
BACKOFF_BASE_SECONDS = 0.02
BACKOFF_CAP_SECONDS = 1.0
# How long an update keeps trying when its caller gives no budget of its own.
DEFAULT_PATIENCE_SECONDS = 10.0
# BatchGetItem reads at most 100 items a call.
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html
BATCH_GET_MAX_KEYS = 100
# A page filtered after reading (a status within a job) reads this many keys at a time.
FILTERED_PAGE_KEYS = BATCH_GET_MAX_KEYS


def run_key(run_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"RUN#{run_id}"}}


def run_data_key(run_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"RUNDATA#{run_id}"}}


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


def _backoff(tries: int) -> float:
    """Full jitter: uniform in [0, min(CAP, BASE * 2**tries)] seconds."""
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**tries))  # noqa: S311 (jitter, not secrecy)


class RunTable:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def create_run(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """Write a new run row. None when written; the stored row when the run already exists
        (a duplicate trigger)."""
        return self._put_new({"pk": f"RUN#{row['run_id']}", **row})

    def create_run_data(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """Write a run's cold data once (before its row). None when written; the stored data when
        a delivery of the same run wrote it first: that is the run's data, never this one."""
        return self._put_new({"pk": f"RUNDATA#{data['run_id']}", **data})

    def _put_new(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """Put an item that must not exist yet; on the condition's failure DynamoDB returns the
        stored item with the error (ReturnValuesOnConditionCheckFailure), so no read follows.
        https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_PutItem.html"""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_to_item(item),
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _conditional_failed(error):
                return _from_item(error.response["Item"])
            raise
        return None

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        item = self._client.get_item(TableName=self._table, Key=run_key(run_id), ConsistentRead=True).get("Item")
        return _from_item(item) if item else None

    def get_run_data(self, run_id: str) -> dict[str, Any] | None:
        """The run's cold data (trigger event, arguments, retry_of); None for a row written before
        the split, whose row holds them itself."""
        item = self._client.get_item(TableName=self._table, Key=run_data_key(run_id), ConsistentRead=True).get("Item")
        return _from_item(item) if item else None

    def get_run_and_data(self, run_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The run's row and its cold data, in one BatchGetItem."""
        items = self._batch_get([run_key(run_id), run_data_key(run_id)], consistent=True)
        return items.get(f"RUN#{run_id}"), items.get(f"RUNDATA#{run_id}")

    def _batch_get(self, keys: list[dict[str, Any]], *, consistent: bool = False) -> dict[str, dict[str, Any]]:
        """Items by `pk`, 100 keys a call; keys DynamoDB leaves unprocessed (throttling, or over
        16 MB) are asked again after a backoff, as the BatchGetItem page says. A missing item is
        absent from the answer."""
        items: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), BATCH_GET_MAX_KEYS):
            pending: dict[str, Any] = {
                self._table: {"Keys": keys[start : start + BATCH_GET_MAX_KEYS], "ConsistentRead": consistent}
            }
            tries, time_left = 0, patience(DEFAULT_PATIENCE_SECONDS)
            while pending:
                answer = self._client.batch_get_item(RequestItems=pending)
                for item in answer.get("Responses", {}).get(self._table, []):
                    items[item["pk"]["S"]] = _from_item(item)
                pending = answer.get("UnprocessedKeys") or {}
                if pending:
                    delay = _backoff(tries)
                    tries += 1
                    if delay >= time_left():
                        raise RowContended(f"BatchGetItem left {len(pending[self._table]['Keys'])} keys unread")
                    time.sleep(delay)
        return items

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
                delay = _backoff(conflicts)
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
        or later, in `status` if given. The index holds keys only: each page of keys is read with
        BatchGetItem (eventually consistent, like the index itself), and a row whose current
        partition value or status no longer matches (the index lags the row) is left out. Pages
        until `limit` rows or the end. Returns the rows and, when more may follow, the index key
        of the last row (to start the next page at)."""
        attribute, value = partition
        names = {"#k": attribute}
        values = {":k": {"S": value}}
        condition = "#k = :k"
        if since:
            condition += " AND #c >= :since"
            names["#c"] = "created_at"
            values[":since"] = {"S": since}
        params: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index,
            "ScanIndexForward": False,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        wanted = {attribute: value, **({"status": status} if status else {})}
        exclusive = {k: {"S": v} for k, v in start_key.items()} if start_key else None
        rows: list[dict[str, Any]] = []
        while True:
            page = self._client.query(
                **params,
                # Unfiltered, nearly every key read is a row returned: read no more than needed.
                Limit=limit - len(rows) if not status else FILTERED_PAGE_KEYS,
                **({"ExclusiveStartKey": exclusive} if exclusive else {}),
            )
            keys = page.get("Items", [])
            exclusive = page.get("LastEvaluatedKey")
            found = self._batch_get([{"pk": key["pk"]} for key in keys])
            for position, key in enumerate(keys):
                row = found.get(key["pk"]["S"])
                if row is None or any(row.get(k) != v for k, v in wanted.items()):
                    continue
                rows.append(row)
                if len(rows) == limit:
                    more = position < len(keys) - 1 or exclusive is not None
                    return rows, _from_item(key) if more else None
            if exclusive is None:
                return rows, None

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
