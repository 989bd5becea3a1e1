"""Fan-outs: a manifest (an S3 object, or a message's list of items) becomes one run per item.

FanoutFunction takes a request from the fan-out request queue (a manifest rule's delivery, a
`{"job", "items"|"manifest"}` message, or its own continuation), writes `FANOUT#<id>` once (the id
is deterministic: job + bucket/key/version-or-ETag, or the message's idempotency key), then
streams the manifest line by line. Each line is checked like any trigger's arguments; a bad line
is rejected on its own (event DLQ with manifest, line and reason; `RejectedTriggers`), a good one
is queued as one message on the fan-out queue. Checkpoints (byte offset, counts) follow the
queued messages, so a reader that runs out of time, or dies, goes on from the last one: a
redelivered request, continuation or item message never makes a second run, because each run is
named after (fan-out id, line). FanoutWorker starts the queued items (RunStarter.start, trigger
type `manifest`) at the pace of its event source's MaximumConcurrency, and skips those of a
stopped fan-out. How many runs a fan-out made is counted from its runs themselves (the by-fanout
index), so no crash between a run's creation and a counter can make the count wrong.
Supported: MAX_ITEMS items and MAX_MANIFEST_BYTES per manifest, refused above.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from jobline import manifests
from jobline.catalog import Job
from jobline.clock import now_iso
from jobline.deps import Deps
from jobline.errors import JoblineError, MalformedEvent, NoMatchingJob, RejectedInput
from jobline.fanout_store import QUEUED, READING, REJECTED, STOPPED, FanoutStore
from jobline.intake import reject, require_unicode
from jobline.manifests import BadLine, Format, Line, ManifestObject, ManifestRefused
from jobline.observability import count, logger
from jobline.runs import FanoutItem, resolve_arguments
from jobline.triggers import RuleDelivery, RunRequest, Trigger, run_id

SOURCE = "fanout"
CHECKPOINT_LINES = 500  # lines between checkpoints: what a crashed reader reads again, at most
STOP_MARGIN_SECONDS = 30.0  # kept back from the invocation's end for the last flush and checkpoint
SQS_BATCH_ENTRIES = 10  # SendMessageBatch: 10 messages, 262,144 bytes in all
SQS_BATCH_BYTES = 262_144
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html
ITEMS_PREFIX = "fanout-items/"  # a message's items, stored as a JSON Lines manifest in the run data bucket
WORKER_MARGIN_SECONDS = 10.0  # a worker starts no run with less of its invocation left
LINE_HEAD = 1000  # characters of a rejected line kept in its DLQ record


class FanoutMessage(BaseModel):
    """A fan-out asked for by message (trigger queue, API, CLI): items inline or a manifest in S3."""

    model_config = ConfigDict(extra="forbid")

    job: str = Field(min_length=1, max_length=64)
    items: list[Any] | None = Field(default=None, description="Each item a JSON object of fields")
    manifest: str | None = Field(default=None, pattern=r"^s3://[^/]+/.+", description="s3://bucket/key")
    format: Format | None = Field(default=None, description="Of the manifest; default: its trigger's")
    trigger: int = Field(default=0, ge=0, description="Which of the job's triggers.manifest maps the fields")
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)

    @model_validator(mode="after")
    def _one_source(self) -> FanoutMessage:
        if (self.items is None) == (self.manifest is None):
            raise ValueError("give either items (a list of objects) or manifest (s3://bucket/key), not both")
        if self.items is not None and not 1 <= len(self.items) <= manifests.MAX_ITEMS:
            raise ValueError(f"items: 1 to {manifests.MAX_ITEMS} items")
        return self


class Continuation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fanout_id: str = Field(min_length=1, max_length=80)


class QueuedItem(BaseModel):
    """One fan-out queue message: the item of one line, checked, waiting for its run."""

    model_config = ConfigDict(extra="forbid")

    fanout_id: str
    job: str
    manifest: str
    line: int = Field(ge=1)
    arguments: dict[str, str]


def fanout_id(job: str, key: str) -> str:
    """`<job>-<20 hex>`, from the job and what makes the request one logical fan-out."""
    return run_id(job, f"fanout:{key}")


def store_manifest(s3: Any, bucket: str, fid: str, body: bytes, fmt: Format) -> str:
    """Items given in a request, stored once as the fan-out's manifest; its key."""
    key = f"{ITEMS_PREFIX}{fid}.{fmt}"
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
    except ClientError as error:
        if error.response["Error"]["Code"] != "PreconditionFailed":  # a redelivery stored it already
            raise
    return key


def is_fanout_message(body: Any) -> bool:
    """A trigger queue message asking for a fan-out rather than one run."""
    return isinstance(body, dict) and ("items" in body or "manifest" in body)


def request(body: dict[str, Any], fallback_key: str, deps: Deps) -> str:
    """Hand a fan-out message to the fan-out function (checked first: a malformed one raises); its
    id, known before it is read. Without an idempotency key, `fallback_key` names it."""
    message = FanoutMessage.model_validate(body)
    key = message.idempotency_key or fallback_key
    deps.catalog.get(message.job)
    deps.client("sqs").send_message(
        QueueUrl=deps.settings.fanout_request_queue_url,
        MessageBody=message.model_copy(update={"idempotency_key": key}).model_dump_json(exclude_none=True),
    )
    return fanout_id(message.job, f"message:{key}")


class FanoutReader:
    """FanoutFunction's work: open a fan-out once, then read its manifest within a time budget."""

    def __init__(self, deps: Deps, time_left: Callable[[], float]) -> None:
        self._deps = deps
        self._settings = deps.settings
        self._s3 = deps.client("s3")
        self._sqs = deps.client("sqs")
        self._store = FanoutStore(deps.client("dynamodb"), deps.settings.run_table_name)
        self._time_left = time_left

    def handle(self, body: str, message_id: str) -> dict[str, Any]:
        """One request queue message; bad input is rejected (DLQ), AWS errors raise (SQS retries)."""
        raw: Any = body
        try:
            raw = json.loads(body)
            require_unicode(raw)
            if isinstance(raw, dict) and set(raw) == {"fanout_id"}:
                fid = Continuation.model_validate(raw).fanout_id
            elif isinstance(raw, dict) and "event" in raw:
                fid = self._open_rule(RuleDelivery.model_validate(raw))
            else:
                fid = self._open_message(FanoutMessage.model_validate(raw), f"request-message:{message_id}")
        except (ValueError, RejectedInput) as error:  # pydantic's ValidationError is a ValueError
            if not isinstance(error, ValidationError | RejectedInput):
                error = MalformedEvent(f"a fan-out request must be JSON: {error}")
            return {"rejected": reject(error, raw, SOURCE, self._deps)}
        return self.read(fid)

    # ------------------------------------------------------------ opening (once per fan-out)
    def _open_rule(self, delivery: RuleDelivery) -> str:
        from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel

        job, index = self._trigger(delivery.job, delivery.trigger)
        detail = S3EventNotificationEventBridgeModel.model_validate(delivery.event).detail
        manifest = manifests.describe(self._s3, detail.bucket.name, detail.object.key, detail.object.version_id)
        key = f"manifest:{manifest.bucket}:{manifest.key}:{manifest.version_id or manifest.etag}"
        return self._open(job, index, job.triggers.manifest[index].format, key, manifest, f"s3 {manifest.uri}")

    def _open_message(self, message: FanoutMessage, fallback_key: str) -> str:
        job, index = self._trigger(message.job, message.trigger)
        declared = job.triggers.manifest[index].format
        if message.items is not None:
            key = f"message:{message.idempotency_key or fallback_key}"
            manifest = self._store_items(fanout_id(job.name, key), message.items)
            return self._open(job, index, "jsonl", key, manifest, "message")
        bucket, _, object_key = message.manifest.removeprefix("s3://").partition("/")  # type: ignore[union-attr]
        if bucket not in (self._settings.input_bucket, self._settings.run_data_bucket):
            raise ManifestRefused(
                f"manifests are read from the input bucket {self._settings.input_bucket!r}, not {bucket!r}"
            )
        manifest = manifests.describe(self._s3, bucket, object_key)
        version = manifest.version_id or manifest.etag
        key = (
            f"message:{message.idempotency_key}"
            if message.idempotency_key
            else f"manifest:{bucket}:{object_key}:{version}"
        )
        return self._open(job, index, message.format or declared, key, manifest, f"message {manifest.uri}")

    def _trigger(self, job_name: str, index: int) -> tuple[Job, int]:
        job = self._deps.catalog.get(job_name)
        if index >= len(job.triggers.manifest):
            raise NoMatchingJob(f"job {job.name!r} declares no triggers.manifest[{index}]")
        return job, index

    def _store_items(self, fid: str, items: list[Any]) -> ManifestObject:
        """A message's items as a JSON Lines object, so every fan-out is read (and resumed) alike."""
        bucket = self._settings.run_data_bucket
        return manifests.describe(
            self._s3, bucket, store_manifest(self._s3, bucket, fid, manifests.jsonl(items), "jsonl")
        )

    def _open(self, job: Job, index: int, fmt: Format, key: str, manifest: ManifestObject, via: str) -> str:
        fid = fanout_id(job.name, key)
        if self._store.get(fid) is not None:  # a redelivered request: go on with what is recorded
            return fid
        now = now_iso()
        record: dict[str, Any] = {
            "fanout_id": fid,
            "job_name": job.name,
            "trigger": index,
            "format": fmt,
            "mapping": dict(job.triggers.manifest[index].arguments),
            "manifest": manifest.uri,
            "bucket": manifest.bucket,
            "key": manifest.key,
            "version_id": manifest.version_id,
            "etag": manifest.etag,
            "size": manifest.size,
            "source": via,
            "created_at": now,
            "updated_at": now,
            "expires_at": int(time.time()) + self._settings.run_retention_days * 86_400,
            "offset": 0,
            "lines_read": 0,
            "queued": 0,
            "rejected": 0,
            "ended": {},
        }
        try:
            record.update(self._survey(manifest, fmt), state=READING)
        except ManifestRefused as error:
            record.update(state=REJECTED, reason=str(error), item_count=0)
            if self._store.create(record):
                reject(error, {"fanout_id": fid, "manifest": manifest.uri}, SOURCE, self._deps, job=job.name)
            return fid
        if self._store.create(record):
            logger.info(
                "fan-out opened", extra={"fanout_id": fid, "manifest": manifest.uri, "items": record["item_count"]}
            )
            count("FanoutsOpened")
        return fid

    def _survey(self, manifest: ManifestObject, fmt: Format) -> dict[str, Any]:
        """Count the items (refusing a manifest over MAX_ITEMS before any run) and read a CSV header."""
        manifests.check_size(manifest)
        items, header, header_line = 0, None, 0
        for line in manifests.lines(self._s3, manifest):
            if _blank(line):
                continue
            if fmt == "csv" and header is None:
                header, header_line = manifests.csv_header(_decode_header(line)), line.number
                continue
            items += 1
            if items > manifests.MAX_ITEMS:
                raise ManifestRefused(
                    f"manifest {manifest.uri} has over {manifests.MAX_ITEMS} items, the most one fan-out supports:"
                    " split it"
                )
        return {"item_count": items, "header": header, "header_line": header_line}

    # ------------------------------------------------------------ reading (resumable)
    def read(self, fid: str) -> dict[str, Any]:
        record = self._store.get(fid)
        if record is None or record["state"] != READING:
            return {"fanout_id": fid, "state": record["state"] if record else None}
        lease = self._store.claim(fid, self._settings.fanout_lease_seconds)
        if lease is None:  # another delivery is reading it; if that reader dies, its message comes back
            return {"fanout_id": fid, "state": READING, "reader": "busy"}
        job = self._deps.catalog.get(record["job_name"])
        manifest = ManifestObject(
            record["bucket"], record["key"], record.get("version_id"), record["etag"], record["size"]
        )
        cursor = {name: record[name] for name in ("offset", "lines_read", "queued", "rejected")}
        outbox = _Outbox(self._sqs, self._settings.fanout_queue_url)
        since_checkpoint = 0
        try:
            for line in manifests.lines(self._s3, manifest, cursor["offset"], cursor["lines_read"]):
                if line.number > record["header_line"] and not _blank(line):
                    self._take(line, job, record, manifest, outbox, cursor)
                cursor.update(offset=line.end, lines_read=line.number)
                since_checkpoint += 1
                out_of_time = self._time_left() < STOP_MARGIN_SECONDS
                if since_checkpoint >= CHECKPOINT_LINES or out_of_time:
                    outbox.flush()
                    if not self._store.checkpoint(fid, lease, cursor, done=False, now=now_iso()):
                        return {"fanout_id": fid, "state": STOPPED, **cursor}
                    since_checkpoint = 0
                if out_of_time:
                    self._sqs.send_message(
                        QueueUrl=self._settings.fanout_request_queue_url, MessageBody=json.dumps({"fanout_id": fid})
                    )
                    self._store.release(fid, lease)
                    logger.info("fan-out continues in a new invocation", extra={"fanout_id": fid, **cursor})
                    return {"fanout_id": fid, "state": READING, "continued": True, **cursor}
        except ManifestRefused as error:  # the object changed under the reader: keep what was queued
            outbox.flush()
            self._store.checkpoint(fid, lease, {**cursor, "reason": str(error)}, done=True, now=now_iso())
            reject(error, {"fanout_id": fid, "manifest": manifest.uri}, SOURCE, self._deps, job=job.name)
            return {"fanout_id": fid, "state": QUEUED, **cursor}
        outbox.flush()
        if not self._store.checkpoint(fid, lease, cursor, done=True, now=now_iso()):
            return {"fanout_id": fid, "state": STOPPED, **cursor}
        logger.info("fan-out read", extra={"fanout_id": fid, **cursor})
        return {"fanout_id": fid, "state": QUEUED, **cursor}

    def _take(
        self,
        line: Line,
        job: Job,
        record: dict[str, Any],
        manifest: ManifestObject,
        outbox: _Outbox,
        cursor: dict[str, Any],
    ) -> None:
        """One item line: queued for its run, or rejected with its line number and reason."""
        try:
            text = manifests.decode(line)
            fields = manifests.item(text, line.number, record["format"], record.get("header"))
            arguments = manifests.arguments(fields, record["mapping"], line.number)
            try:
                resolve_arguments(job, arguments)
            except RejectedInput as error:
                raise BadLine(f"line {line.number}: {error}") from None
        except RejectedInput as error:
            head = line.text.decode(errors="replace")[:LINE_HEAD] if line.text is not None else None
            payload = {"fanout_id": record["fanout_id"], "manifest": manifest.uri, "line": line.number, "text": head}
            reject(error, payload, SOURCE, self._deps, job=job.name)
            cursor["rejected"] += 1
            return
        item = QueuedItem(
            fanout_id=record["fanout_id"], job=job.name, manifest=manifest.uri, line=line.number, arguments=arguments
        )
        outbox.add(item.model_dump_json())
        cursor["queued"] += 1


class _Outbox:
    """Item messages sent in SendMessageBatch calls (10 entries, 256 KiB at most); an entry SQS
    refuses is sent again, and one refused every time fails the invocation (SQS redelivers it)."""

    ATTEMPTS = 3

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url
        self._pending: list[str] = []

    def add(self, body: str) -> None:
        size = sum(len(b.encode()) for b in self._pending)
        if len(self._pending) == SQS_BATCH_ENTRIES or size + len(body.encode()) > SQS_BATCH_BYTES:
            self.flush()
        self._pending.append(body)

    def flush(self) -> None:
        entries = {str(n): body for n, body in enumerate(self._pending)}
        for _ in range(self.ATTEMPTS):
            if not entries:
                break
            batch = [{"Id": n, "MessageBody": body} for n, body in entries.items()]
            result = self._sqs.send_message_batch(QueueUrl=self._url, Entries=batch)
            entries = {f["Id"]: entries[f["Id"]] for f in result.get("Failed", [])}
        if entries:
            raise RuntimeError(f"SQS refused {len(entries)} fan-out item message(s) {self.ATTEMPTS} times")
        self._pending = []


def _blank(line: Line) -> bool:
    return line.text is not None and not line.text.strip()


def _decode_header(line: Line) -> str:
    try:
        return manifests.decode(line)
    except BadLine as error:
        raise ManifestRefused(f"the CSV header: {error}") from None


# ---------------------------------------------------------------- the worker
class ItemDeferred(JoblineError):
    """Too little of the invocation is left to start another run: the item goes back to the queue
    (it fails alone in the partial batch response) rather than die with the invocation's timeout,
    which would send the whole batch back, started items included."""


class FanoutWorker:
    """FanoutWorker's work: the run of one queued item, once, unless its fan-out was stopped."""

    def __init__(self, deps: Deps, time_left: Callable[[], float]) -> None:
        self._deps = deps
        self._time_left = time_left
        self._store = FanoutStore(deps.client("dynamodb"), deps.settings.run_table_name)
        self._states: dict[str, str | None] = {}  # per invocation: one read per fan-out and batch

    def start(self, body: str) -> str:
        """The run id, "skipped" (fan-out stopped) or "rejected" (the item cannot run)."""
        if (left := self._time_left()) < WORKER_MARGIN_SECONDS:
            raise ItemDeferred(f"{left:.1f} s left of the invocation: the item waits for the next")
        try:
            item = QueuedItem.model_validate_json(body)
        except ValidationError as error:  # only jobline writes this queue: a bug, parked for operators
            reject(error, body, SOURCE, self._deps)
            return "rejected"
        if item.fanout_id not in self._states:
            record = self._store.get(item.fanout_id)
            self._states[item.fanout_id] = record["state"] if record else None
        if self._states[item.fanout_id] in (STOPPED, None):
            logger.info("fan-out item skipped", extra={"fanout_id": item.fanout_id, "line": item.line})
            count("FanoutItemsSkipped")
            return "skipped"
        trigger = Trigger(
            type="manifest",
            key=f"fanout:{item.fanout_id}:{item.line}",
            source=f"{item.manifest} line {item.line}",
            event=item.model_dump(),
        )
        try:
            job = self._deps.catalog.get(item.job)
            request = RunRequest(job=job, trigger=trigger, arguments=item.arguments)
            started = self._deps.starter.start(request, fanout=FanoutItem(item.fanout_id, item.line))
        except RejectedInput as error:
            reject(error, item.model_dump(), SOURCE, self._deps, job=item.job)
            self._store.add(item.fanout_id, "rejected")
            return "rejected"
        count("RunsCreated" if started.created else "DuplicateTriggers", Source=SOURCE)
        return started.run_id
