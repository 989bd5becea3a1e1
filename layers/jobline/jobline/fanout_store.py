"""The fan-out record `pk = FANOUT#<fan-out id>` in the run table, and the listing of a fan-out's runs.

Written once (condition: not there), then moved by whoever holds its reading lease (the reader's
checkpoints: byte offset, lines read, items queued, lines rejected), by the workers (`rejected`:
ADD, for an item refused at its start), by the run table stream (`ended.<final status>`, once per
run end: a `FANOUTEND#<run>` marker) and by a stop.
It carries no `job` or `status` attribute, so the run indexes (by-job-keys, by-status-keys) never list
it; `record_type = FANOUT` and `created_at` put it in by-created-keys, where `fanouts list` reads it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from botocore.exceptions import ClientError

from jobline.dal import RunTable, _from_item, _to_item

READING, QUEUED, STOPPED, REJECTED = "READING", "QUEUED", "STOPPED", "REJECTED"
RECORD_TYPE = "FANOUT"
BY_CREATED_INDEX = "by-created-keys"
BY_FANOUT_INDEX = "by-fanout"


def fanout_key(fanout_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"FANOUT#{fanout_id}"}}


def _failed_condition(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


class FanoutStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def create(self, record: dict[str, Any]) -> bool:
        """Write a new fan-out record; False when it exists (a redelivered request)."""
        item = {"pk": f"FANOUT#{record['fanout_id']}", "record_type": RECORD_TYPE, **record}
        try:
            self._client.put_item(
                TableName=self._table, Item=_to_item(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as error:
            if _failed_condition(error):
                return False
            raise
        return True

    def get(self, fanout_id: str) -> dict[str, Any] | None:
        item = self._client.get_item(TableName=self._table, Key=fanout_key(fanout_id), ConsistentRead=True).get("Item")
        return _from_item(item) if item else None

    def claim(self, fanout_id: str, lease_seconds: int) -> str | None:
        """Take the reading lease of a READING fan-out, unless a live reader holds it: the lease id, or None."""
        lease, now = uuid.uuid4().hex, int(time.time())
        try:
            self._update(
                fanout_id,
                "SET lease_id = :lease, lease_until = :until",
                "#state = :reading AND (attribute_not_exists(lease_until) OR lease_until < :now)",
                {":lease": lease, ":until": now + lease_seconds, ":now": now, ":reading": READING},
            )
        except ClientError as error:
            if _failed_condition(error):
                return None
            raise
        return lease

    def checkpoint(self, fanout_id: str, lease: str, cursor: dict[str, Any], done: bool, now: str) -> bool:
        """Where the reader is (everything before it queued or rejected); `done` ends the reading and
        frees the lease. False: the lease is gone (the fan-out was stopped), so reading stops."""
        # Every name aliased: DynamoDB reserves many plain words (OFFSET among them).
        names = {f"#{name}": name for name in cursor}
        values = {f":{name}": value for name, value in cursor.items()}
        expression = "SET " + ", ".join(f"#{name} = :{name}" for name in cursor) + ", updated_at = :now"
        if done:
            expression += ", #state = :done_state REMOVE lease_id, lease_until"
            values[":done_state"] = QUEUED
        try:
            self._update(
                fanout_id,
                expression,
                "lease_id = :lease AND #state = :reading",
                {**values, ":lease": lease, ":reading": READING, ":now": now},
                names,
            )
        except ClientError as error:
            if _failed_condition(error):
                return False
            raise
        return True

    def release(self, fanout_id: str, lease: str) -> None:
        """Let the next invocation (the continuation message) take the lease at once."""
        try:
            self._update(fanout_id, "REMOVE lease_id, lease_until", "lease_id = :lease", {":lease": lease})
        except ClientError as error:
            if not _failed_condition(error):
                raise

    def add(self, fanout_id: str, counter: str, amount: int = 1) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=fanout_key(fanout_id),
            UpdateExpression="ADD #c :n",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#c": counter},
            ExpressionAttributeValues={":n": {"N": str(amount)}},
        )

    def count_end(self, fanout_id: str, run_id: str, status: str, expires_at: int) -> None:
        """One more run of the fan-out ended in `status`, never counted twice however often the
        stream hands the end over (a retried batch): a marker item `FANOUTEND#<run>` is written
        first, only if absent, then the count (ADD works on top-level attributes only, so the map
        entry is SET from itself). A count that fails takes its marker back, so the retry counts it;
        only a function killed between the two writes leaves an end uncounted. (Not one
        TransactWriteItems: moto 5.2.5's deep-copies the whole table for its rollback on every call,
        which stalls a local fan-out of thousands of runs.)"""
        marker = {"pk": {"S": f"FANOUTEND#{run_id}"}}
        try:
            self._client.put_item(
                TableName=self._table,
                Item={**marker, "expires_at": {"N": str(expires_at)}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if _failed_condition(error):
                return  # counted before
            raise
        try:
            self._client.update_item(
                TableName=self._table,
                Key=fanout_key(fanout_id),
                UpdateExpression="SET #e.#s = if_not_exists(#e.#s, :zero) + :one",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#e": "ended", "#s": status},
                ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"}},
            )
        except ClientError as error:
            if _failed_condition(error):  # the record expired (TTL) before its last run ended
                return
            self._client.delete_item(TableName=self._table, Key=marker)
            raise

    def stop(self, fanout_id: str, reason: str, now: str) -> bool:
        """Mark a live fan-out stopped (the reader and the workers see it); False if it was not live."""
        try:
            self._update(
                fanout_id,
                "SET #state = :stopped, #reason = :reason, updated_at = :now REMOVE lease_id, lease_until",
                "#state IN (:reading, :queued)",
                {":stopped": STOPPED, ":reason": reason, ":now": now, ":reading": READING, ":queued": QUEUED},
                {"#reason": "reason"},
            )
        except ClientError as error:
            if _failed_condition(error):
                return False
            raise
        return True

    def page(self, limit: int, start_key: dict[str, str] | None) -> tuple[list[dict[str, Any]], dict[str, str] | None]:
        """Fan-outs newest first: the keys-only by-created-keys index (partition FANOUT), each page's
        records read with BatchGetItem (RunTable.query_runs)."""
        return RunTable(self._client, self._table).query_runs(
            BY_CREATED_INDEX, ("record_type", RECORD_TYPE), limit=limit, start_key=start_key
        )

    def count_runs(self, fanout_id: str) -> int:
        """How many runs the fan-out made: its by-fanout keys, counted (pages of 1 MB of keys)."""
        params: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": BY_FANOUT_INDEX,
            "KeyConditionExpression": "fanout_id = :f",
            "ExpressionAttributeValues": {":f": {"S": fanout_id}},
            "Select": "COUNT",
        }
        total = 0
        while True:
            page = self._client.query(**params)
            total += page["Count"]
            if "LastEvaluatedKey" not in page:
                return total
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def run_ids(
        self, fanout_id: str, limit: int, start_key: dict[str, Any] | None
    ) -> tuple[list[str], dict[str, Any] | None]:
        """A page of the fan-out's run ids in line order (the sparse by-fanout index)."""
        params: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": BY_FANOUT_INDEX,
            "KeyConditionExpression": "fanout_id = :f",
            "ExpressionAttributeValues": {":f": {"S": fanout_id}},
            "Limit": limit,
        }
        if start_key:
            params["ExclusiveStartKey"] = start_key
        page = self._client.query(**params)
        ids = [item["pk"]["S"].removeprefix("RUN#") for item in page.get("Items", [])]
        return ids, page.get("LastEvaluatedKey")

    def _update(
        self,
        fanout_id: str,
        expression: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> None:
        names = {**(names or {}), **({"#state": "state"} if "#state" in expression + condition else {})}
        self._client.update_item(
            TableName=self._table,
            Key=fanout_key(fanout_id),
            UpdateExpression=expression,
            ConditionExpression=condition,
            **({"ExpressionAttributeNames": names} if names else {}),
            ExpressionAttributeValues=_to_item(values),
        )


def record_run_end(row: dict[str, Any], store: FanoutStore) -> None:
    """Count a run's end on its fan-out (the stream consumer calls this once per run that became
    final); runs that are no fan-out's items are left alone."""
    if row.get("fanout_id"):
        store.count_end(
            row["fanout_id"], row["run_id"], row["status"], int(row.get("expires_at") or time.time() + 86_400)
        )
