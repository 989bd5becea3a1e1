"""All DynamoDB access to the run table.

Items: a run is its hot row `pk = RUN#<run id>` (status, attempts, times: small, so each write is
one write unit) and its cold data `pk = RUNDATA#<run id>` (trigger event, arguments, retry_of:
written once before the row, never updated); an attempt's ticket `pk = ATTEMPT#<run id>#<n>`
(written by the submitter: the task token and retry strategy of that attempt); a job's concurrency
slots `pk = SLOT#<job>`, `holders` a map of run id -> time taken (taken by the state machine's
AcquireSlot, released and handed on by jobline.slots only); a submit API's call slot
`pk = QUOTA#<api>#<slot>` (one call each, jobline.quota). The indexes hold keys only (by-waiting
adds the waiter's token): a listing queries keys and reads the page's rows with BatchGetItem.

State change events write with one conditional UpdateItem each (`write_run`, the rules in
jobline.status), without reading the row first; the submitter claims attempts the same way.
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
from jobline.status import RANK_CLAIMED, RANK_TERMINAL, Reason, RowWrite, RunStatus


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
# Backoff before the n-th re-ask for keys BatchGetItem left unprocessed (and after a lost race):
# uniform in [0, min(CAP, BASE * 2**n)] seconds.
BACKOFF_BASE_SECONDS = 0.02
BACKOFF_CAP_SECONDS = 1.0
# How long a read keeps re-asking for unprocessed keys.
DEFAULT_PATIENCE_SECONDS = 10.0
# BatchGetItem reads at most 100 items a call.
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html
BATCH_GET_MAX_KEYS = 100
# A page filtered after reading (a status within a job) reads this many keys at a time.
FILTERED_PAGE_KEYS = BATCH_GET_MAX_KEYS


def run_key(run_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"RUN#{run_id}"}}


def slot_key(job: str) -> dict[str, Any]:
    return {"pk": {"S": f"SLOT#{job}"}}


def waiting_for(job: str) -> str:
    """What a run waiting for one of the job's concurrency slots has in `waiting_for`."""
    return f"slot#{job}"


def ticket_key(run_id: str, attempt: int) -> dict[str, Any]:
    """An attempt's ticket: the task token waiting for it (written by the submitter, read by the
    state change handler at the attempt's end)."""
    return {"pk": {"S": f"ATTEMPT#{run_id}#{attempt}"}}


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


def _made(write: Callable[[], Any]) -> bool:
    """Make one conditional write: False when its condition failed."""
    try:
        write()
    except ClientError as error:
        if _conditional_failed(error):
            return False
        raise
    return True


def _backoff(tries: int) -> float:
    """Full jitter: uniform in [0, min(CAP, BASE * 2**tries)] seconds.
    https://aws.amazon.com/builders-library/timeouts-retries-and-backoff-with-jitter/"""
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

    def write_run(self, run_id: str, write: RowWrite) -> tuple[bool, dict[str, Any] | None]:
        """Make one conditional write on a run row: (True, the row before it), or, when its
        condition failed, (False, the row as it is: DynamoDB returns it with the failure at no
        extra read, ReturnValuesOnConditionCheckFailure; None when there is no such run).
        https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html"""
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key=run_key(run_id),
                UpdateExpression=write.update,
                ConditionExpression=write.condition,
                ExpressionAttributeNames=write.names,
                ExpressionAttributeValues={k: _serializer.serialize(v) for k, v in write.values.items()},
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise
            item = error.response.get("Item")
            return False, _from_item(item) if item else None
        return True, _from_item(answer["Attributes"])

    def attempt_ticket(self, run_id: str, attempt: int) -> dict[str, Any] | None:
        """The submitter's ticket of one attempt (task token, retry strategy). Written minutes
        before an attempt can end, so an eventually consistent read (half the cost) finds it; a
        miss is read again consistently before it counts."""
        key = ticket_key(run_id, attempt)
        for consistent in (False, True):
            item = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=consistent).get("Item")
            if item:
                return _from_item(item)
        return None

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

    def slot_holders(self, job: str) -> dict[str, str]:
        """The runs holding one of the job's concurrency slots: run id -> when it took it."""
        item = self._client.get_item(
            TableName=self._table,
            Key=slot_key(job),
            ConsistentRead=True,
            ProjectionExpression="#h",
            ExpressionAttributeNames={"#h": "holders"},
        ).get("Item", {})
        return _from_item(item).get("holders", {})

    def take_slot(self, job: str, run_id: str, limit: int, at: str) -> str:
        """Give the run one of the job's slots if fewer than `limit` are held: "taken" (by this
        write), "held" (the run holds one already: whoever gave it wakes it), or "full" (the slot
        item comes back with the failure to tell the two apart)."""
        try:
            self._slot_write(
                job,
                "SET #h.#r = :at",
                "attribute_not_exists(#h.#r) AND (attribute_not_exists(#h) OR size(#h) < :limit)",
                {"#r": run_id},
                {":at": {"S": at}, ":limit": {"N": str(limit)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise
            holders = error.response.get("Item", {}).get("holders", {}).get("M", {})
            return "held" if run_id in holders else "full"
        return "taken"

    def hand_off_slot(self, job: str, done: str, to: str, at: str) -> bool:
        """Move the slot `done` holds to `to` in one write (no newcomer can take it in between).
        False when `done` holds none (released before, or never held one) or `to` holds one."""
        return self._slot_change(
            job,
            "SET #h.#to = :at REMOVE #h.#done",
            "attribute_exists(#h.#done) AND attribute_not_exists(#h.#to)",
            {"#to": to, "#done": done},
            {":at": {"S": at}},
        )

    def release_slot(self, job: str, run_id: str) -> bool:
        """Take the run out of its job's slot holders; False when it held none."""
        return self._slot_change(job, "REMOVE #h.#r", "attribute_exists(#h.#r)", {"#r": run_id}, {})

    def _slot_change(
        self, job: str, update: str, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> bool:
        """A conditional write on the job's slots: False when its condition fails."""
        return _made(lambda: self._slot_write(job, update, condition, names, values))

    def _slot_write(
        self, job: str, update: str, condition: str, names: dict[str, str], values: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        params = {
            "TableName": self._table,
            "Key": slot_key(job),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#h": "holders", **names},
            **({"ExpressionAttributeValues": values} if values else {}),
            **extra,
        }
        try:
            return self._client.update_item(**params)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ValidationException" or not update.startswith("SET"):
                raise
        # A nested SET needs the holders map: the job's first slot makes it, then writes again.
        self._client.update_item(
            TableName=self._table,
            Key=slot_key(job),
            UpdateExpression="SET #h = if_not_exists(#h, :empty)",
            ExpressionAttributeNames={"#h": "holders"},
            ExpressionAttributeValues={":empty": {"M": {}}},
        )
        return self._client.update_item(**params)

    def slot_waiters(self, job: str, limit: int) -> list[dict[str, Any]]:
        """The oldest runs waiting for one of the job's slots, oldest first (the sparse by-waiting
        index: `waiting_for`, `created_at`, and the waiter's `slot_token`). Eventually consistent:
        a waiter just served may still be listed, one just registered not yet."""
        page = self._client.query(
            TableName=self._table,
            IndexName="by-waiting",
            KeyConditionExpression="#w = :w",
            ExpressionAttributeNames={"#w": "waiting_for"},
            ExpressionAttributeValues={":w": {"S": waiting_for(job)}},
            ScanIndexForward=True,
            Limit=limit,
        )
        return [{**(row := _from_item(item)), "run_id": row["pk"].removeprefix("RUN#")} for item in page["Items"]]

    def clear_waiter(self, run_id: str, token: str, reason: str | None) -> bool:
        """The run waits no more (served, or gone): its wait fields go, and `reason` replaces
        "Waiting for a concurrency slot" unless the run has ended. False when the row no longer
        holds `token` (cleared before, or waiting again with a newer one)."""
        names = {"#t": "slot_token", "#w": "waiting_for"}
        values: dict[str, Any] = {":token": {"S": token}}
        update, condition = "REMOVE #t, #w", "#t = :token"
        if reason is not None:
            names |= {"#reason": "reason", "#rank": "status_rank"}
            values |= {":reason": {"S": reason}, ":terminal": {"N": str(RANK_TERMINAL)}}
            update, condition = f"SET #reason = :reason {update}", f"{condition} AND #rank < :terminal"
        cleared = _made(
            lambda: self._client.update_item(
                TableName=self._table,
                Key=run_key(run_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        )
        # An ended run keeps its reason; its wait fields still go.
        return cleared or (reason is not None and self.clear_waiter(run_id, token, None))

    # ------------------------------------------------------------ the submitter (jobline.submit)

    def put_ticket(self, run_id: str, attempt: int, ticket: dict[str, Any]) -> bool:
        """Write attempt `attempt`'s ticket (the task token waiting for it and what the event handler
        needs), unless it already holds a newer token (a greater retry_count): False then. An
        UpdateItem, so it keeps what others add to the ticket."""
        names = {f"#f{i}": name for i, name in enumerate(ticket)}
        values = {f":f{i}": _serializer.serialize(value) for i, value in enumerate(ticket.values())}
        return _made(
            lambda: self._client.update_item(
                TableName=self._table,
                Key=ticket_key(run_id, attempt),
                UpdateExpression="SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(ticket))),
                ConditionExpression="attribute_not_exists(pk) OR #rc <= :rc",
                ExpressionAttributeNames={**names, "#rc": "retry_count"},
                ExpressionAttributeValues={**values, ":rc": _serializer.serialize(ticket["retry_count"])},
            )
        )

    def claim_attempt(self, run_id: str, attempt: int, now: str, lease_until: int) -> dict[str, Any] | None:
        """Make `attempt` the run's current attempt, STARTING "In queue" at RANK_CLAIMED (so every
        event of the attempt moves the row on), if the run is live and its previous attempt (if
        any) ended FAILED or TIMEOUT: the one write that numbers attempts. The claimer holds the
        attempt's submit lease until `lease_until` (epoch seconds). None when claimed; else the
        row as it was (the condition failed), {} if there is no row."""
        record = {"status": RunStatus.STARTING.value, "reason": Reason.IN_QUEUE.value, "submitted_at": now}
        names = {"#a": "attempt", "#s": "status", "#r": "reason", "#k": "status_rank", "#as": "attempts"}
        values: dict[str, Any] = {":n": attempt, ":terminal": RANK_TERMINAL}
        condition = "#a = :prev AND #k < :terminal"
        if attempt > 1:
            names["#p"] = str(attempt - 1)
            values.update({":failed": RunStatus.FAILED.value, ":timeout": RunStatus.TIMEOUT.value})
            condition += " AND #as.#p.#s IN (:failed, :timeout)"
        return self._conditional_update(
            run_id,
            "SET #a = :n, #s = :starting, #r = :reason, #k = :rank, #t = :now, #u = :now, #as.#n = :record",
            condition,
            {**names, "#n": str(attempt), "#t": "status_time", "#u": "updated_at"},
            {
                **values,
                ":prev": attempt - 1,
                ":starting": RunStatus.STARTING.value,
                ":reason": Reason.IN_QUEUE.value,
                ":rank": RANK_CLAIMED,
                ":now": now,
                ":record": {**record, "lease_until": lease_until},
            },
        )

    def take_submit_lease(self, run_id: str, attempt: int, now: int, lease_until: int) -> dict[str, Any] | None:
        """Hold the submit lease of the run's current attempt `attempt` until `lease_until` (epoch
        seconds), if the run is live, no job is recorded for the attempt and no lease is held: at
        most one submitter at a time looks for the attempt's job and submits it. None when taken;
        else the row as it was, {} if there is no row."""
        return self._conditional_update(
            run_id,
            "SET #as.#n.#l = :until",
            "#a = :n AND #k < :terminal AND attribute_not_exists(#as.#n.#j)"
            " AND (attribute_not_exists(#as.#n.#l) OR #as.#n.#l < :now)",
            {"#a": "attempt", "#k": "status_rank", "#as": "attempts", "#n": str(attempt), "#l": "lease_until"}
            | {"#j": "backend_job_id"},
            {":n": attempt, ":terminal": RANK_TERMINAL, ":now": now, ":until": lease_until},
        )

    def record_backend_job(self, run_id: str, attempt: int, job_id: str) -> None:
        """The attempt's backend job, as the submitter got it (an event may have recorded it first).
        Its submit lease goes with it: no submitter takes one for an attempt with a job."""
        self._client.update_item(
            TableName=self._table,
            Key=run_key(run_id),
            UpdateExpression="SET #as.#n.#j = if_not_exists(#as.#n.#j, :job) REMOVE #as.#n.#l",
            ConditionExpression="attribute_exists(#as.#n)",
            ExpressionAttributeNames={
                "#as": "attempts",
                "#n": str(attempt),
                "#j": "backend_job_id",
                "#l": "lease_until",
            },
            ExpressionAttributeValues={":job": {"S": job_id}},
        )

    def fail_submit(self, run_id: str, attempt: int, why: str, now: str) -> bool:
        """End the run FAILED "SubmitFailed": AWS refused the attempt's request (`why`). False when the
        run had ended already or moved to another attempt."""
        failed, reason = RunStatus.FAILED.value, Reason.SUBMIT_FAILED.value
        found = self._conditional_update(
            run_id,
            "SET #s = :failed, #r = :reason, #k = :terminal, #t = :now, #e = :now, #u = :now,"
            " #as.#n.#s = :failed, #as.#n.#r = :reason, #as.#n.#w = :why, #as.#n.#stop = :now",
            "#a = :n AND #k < :terminal",
            {"#a": "attempt", "#s": "status", "#r": "reason", "#k": "status_rank", "#as": "attempts"}
            | {"#n": str(attempt), "#t": "status_time", "#e": "ended_at", "#u": "updated_at"}
            | {"#w": "status_reason", "#stop": "stopped_at"},
            {":failed": failed, ":reason": reason, ":terminal": RANK_TERMINAL, ":now": now, ":n": attempt}
            | {":why": why},
        )
        return found is None

    def take_quota(self, api: str, slot: int, expires_at: int) -> bool:
        """Take slot `slot` of `api`'s schedule (jobline.quota), if no submitter of the stack has:
        one conditional put of a small item, expiring soon after."""
        return self._put_new({"pk": f"QUOTA#{api}#{slot}", "expires_at": expires_at}) is None

    def _conditional_update(
        self, run_id: str, update: str, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A conditional UpdateItem of the run row: None when made, else the row as it was ({} if none)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=run_key(run_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={k: _serializer.serialize(v) for k, v in values.items()},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _conditional_failed(error):
                return _from_item(error.response.get("Item", {}))
            raise
        return None
