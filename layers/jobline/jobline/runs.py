"""Starting runs: check arguments, write the run's data and its row once, start the execution once.

Everything that can refuse a request is checked before anything is written. A trigger event too
large to inline is stored first, content-addressed and with S3's conditional write
(If-None-Match: *), so no object is ever replaced. Then the run's cold data (`RUNDATA#`: trigger
event or its S3 URI, trigger key, arguments, retry_of) is written once, with a condition that it does not exist,
and after it the hot row (`RUN#`, PENDING: status, attempts, times; small, so every later write of
it is one write unit). Whoever writes the data decides the run's trigger event: a duplicate
delivery removes the object it stored if the stored data does not point to it, and starts the
execution with the input built from the stored data, never from its own delivery, so the data,
the execution and the job all see the first delivery's event. The execution is named after the
run, so it starts once. A crash between the data, the row and the start heals on redelivery, or
at the reconciler's next sweep (RunStarter.start_stored).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from jobline import run_view
from jobline.backends import BACKENDS, RunSpec
from jobline.catalog import Catalog, Job
from jobline.clock import now_iso, parse_iso_z
from jobline.dal import RunTable
from jobline.errors import InvalidArguments, MalformedEvent, UnknownJobError
from jobline.status import RANK_PENDING, TERMINAL, Reason, RunStatus
from jobline.submit_request import SubmitRequest
from jobline.triggers import RunRequest

if TYPE_CHECKING:
    from jobline.settings import Settings

# Waiting in a queue is not part of a job's own timeout, so the state machine's guard on one
# attempt (against a Batch job whose end is never reported) allows this much beyond it.
QUEUE_ALLOWANCE_SECONDS = 6 * 3600
TRIGGER_TEXT_LIMIT = 2048  # characters of a trigger's key and of its source kept in the row


@dataclass(frozen=True)
class StoredEvent:
    """A trigger event too large to inline, and the S3 object it is stored as."""

    bucket: str
    key: str
    body: bytes


@dataclass(frozen=True)
class FanoutItem:
    """The fan-out (manifest) and line a run was started from: the row's sparse `by-fanout` key."""

    fanout_id: str
    line: int


@dataclass(frozen=True)
class StartedRun:
    run_id: str
    job: str
    created: bool


def resolve_arguments(job: Job, supplied: dict[str, str]) -> dict[str, str]:
    """Declared parameters only, each within its max_length, required ones present, defaults filled."""
    if undeclared := sorted(set(supplied) - set(job.parameters)):
        declared = sorted(job.parameters) or "none"
        raise InvalidArguments(f"job {job.name!r} does not declare parameters {undeclared} (declared: {declared})")
    resolved: dict[str, str] = {}
    for name, param in job.parameters.items():
        value = supplied.get(name, param.default)
        if value is None:
            if param.required:
                raise InvalidArguments(f"job {job.name!r} requires parameter {name!r}")
            continue
        if not _encodable(value):
            raise InvalidArguments(f"job {job.name!r}: argument {name!r} is not valid Unicode text")
        if len(value) > param.max_length:
            raise InvalidArguments(
                f"job {job.name!r}: argument {name!r} is {len(value)} characters,"
                f" over its max_length {param.max_length}"
            )
        resolved[name] = value
    return resolved


def check_trigger(request: RunRequest) -> None:
    """What the row keeps of its trigger stays small, so no row nears DynamoDB's 400 KB item limit
    (the event itself is inlined only when small, else stored in S3)."""
    for name in ("key", "source"):
        if len(value := getattr(request.trigger, name)) > TRIGGER_TEXT_LIMIT:
            raise MalformedEvent(
                f"the trigger's {name} is {len(value)} characters, over {TRIGGER_TEXT_LIMIT}"
                " (an idempotency key or name this long identifies nothing)"
            )


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate, which JSON escapes can carry
        return False
    return True


def new_row(
    request: RunRequest,
    settings: Settings,
    created_at: str,
    fanout: FanoutItem | None = None,
    retry_of: str | None = None,
) -> dict[str, Any]:
    """The hot row of a new run: what changes while it runs and what lists show, nothing more
    (its trigger event, trigger key and arguments are its cold data, new_run_data), so that a
    first attempt's every write stays within one write unit (1 KB)."""
    job = request.job
    # TTL: retention counted from the latest moment the run can still be going, so a row is
    # never expired while its run may be live (the state machine cannot compute epoch times).
    longest = job.retry.attempts * (job.timeout_seconds + QUEUE_ALLOWANCE_SECONDS) + math.ceil(sum(job.retry.delays()))
    created_epoch = int(parse_iso_z(created_at).timestamp())
    row = {
        "run_id": request.run_id,
        "record_type": "RUN",
        "job": job.name,
        "backend": job.backend.type,
        "status": RunStatus.PENDING.value,
        "reason": Reason.RECENTLY_SUBMITTED.value,
        "status_rank": RANK_PENDING,
        "status_time": created_at,
        "attempt": 0,
        "max_attempts": job.retry.attempts,
        "attempts": {},
        "trigger": {"type": request.trigger.type, "source": request.trigger.source},
        "created_at": created_at,
        "updated_at": created_at,
        "expires_at": created_epoch + longest + settings.run_retention_days * 86_400,
        # The machine its execution runs on (named after the run, so its ARN is known before it
        # starts: run_view.execution_arn), kept should the job's policy change in the catalog.
        "policy": job.policy_id,
    }
    if retry_of:
        row["retry_of"] = retry_of
    if job.max_concurrent_runs is not None:
        # The stream consumer releases and hands on the slot of a run that ends (jobline.slots).
        row.update(slot_job=job.name, slot_max=job.max_concurrent_runs)
    if fanout is not None:
        row.update(fanout_id=fanout.fanout_id, fanout_line=fanout.line)
    return row


def new_run_data(
    request: RunRequest, arguments: dict[str, str], event: dict[str, str], expires_at: int, retry_of: str | None
) -> dict[str, Any]:
    """The cold data of a new run (`event` is stored_event's inline event or S3 URI). It carries no
    index key (`job`, `status`, `created_at`...), so no index ever holds it."""
    data: dict[str, Any] = {
        "run_id": request.run_id,
        "trigger_key": request.trigger.key,
        **event,
        "arguments": arguments,
        "expires_at": expires_at,
    }
    if retry_of:
        data["retry_of"] = retry_of
    return data


def run_data_of(row: dict[str, Any], data: dict[str, Any] | None) -> dict[str, Any]:
    """A run's cold data; a row written before the split (no RUNDATA item) holds it itself."""
    if data is not None:
        return data
    trigger = row.get("trigger") or {}
    legacy = {k: trigger[k] for k in ("event", "event_s3_uri") if k in trigger}
    return {"run_id": row["run_id"], **legacy, "arguments": row.get("arguments") or {}, "retry_of": row.get("retry_of")}


def stored_event(request: RunRequest, settings: Settings) -> tuple[dict[str, str], StoredEvent | None]:
    """The run data's event field: the event inline when small, else a reference to the S3
    object it is stored in (never truncated); and that object, when there is one to write."""
    body = json.dumps(request.trigger.event, separators=(",", ":"), default=str).encode()
    limit = BACKENDS[request.job.backend.type].inline_event_limit or settings.inline_event_limit_bytes
    if len(body) <= limit:
        return {"event": body.decode()}, None
    # Content-addressed: redeliveries of one event share an object, different events never do.
    key = f"trigger-events/{request.run_id}/{hashlib.sha256(body).hexdigest()[:32]}.json"
    return {"event_s3_uri": f"s3://{settings.run_data_bucket}/{key}"}, StoredEvent(settings.run_data_bucket, key, body)


def event_variable(data: dict[str, Any]) -> dict[str, str]:
    """How the job gets the run's trigger event: inline, or as the URI of its S3 object."""
    if "event_s3_uri" in data:
        return {"JOBLINE_TRIGGER_EVENT_S3_URI": data["event_s3_uri"]}
    return {"JOBLINE_TRIGGER_EVENT": data["event"]}


def job_environment(job: Job, run_id: str, arguments: dict[str, str], event_variable: dict[str, str]) -> dict[str, str]:
    """What every attempt of the job sees, JOBLINE_ATTEMPT aside (the state machine adds it)."""
    return {
        **job.environment,
        "JOBLINE_RUN_ID": run_id,
        "JOBLINE_JOB_NAME": job.name,
        "JOBLINE_MAX_ATTEMPTS": str(job.retry.attempts),
        **event_variable,
        **{f"JOBLINE_ARG_{name.upper()}": value for name, value in arguments.items()},
    }


def stored_execution_input(job: Job, data: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The execution input of a stored run: its arguments and trigger event as its data holds them."""
    return execution_input(job, data["run_id"], data["arguments"], event_variable(data), settings)


def execution_input(
    job: Job, run_id: str, arguments: dict[str, str], event_variable: dict[str, str], settings: Settings
) -> dict[str, Any]:
    """What the state machine needs for every attempt; per-attempt values are the submitter's."""
    environment = job_environment(job, run_id, arguments, event_variable)
    run = RunSpec(
        run_id=run_id,
        job_name=job.name,
        timeout_seconds=job.timeout_seconds,
        max_attempts=job.retry.attempts,
        arguments=arguments,
        environment=environment,
    )
    backend = BACKENDS[job.backend.type]
    guard = job.timeout_seconds + QUEUE_ALLOWANCE_SECONDS
    payload: dict[str, Any] = {
        "run_id": run_id,
        "job": job.name,
        "backend": job.backend.type,
        "submit_queue_url": settings.submit_queue_url(backend.submit_api),
        "guard_timeout_seconds": guard,
        # The Attempt state sends this to the submit queue as the message's `request`.
        "request": SubmitRequest(
            backend=job.backend.type,
            max_attempts=job.retry.attempts,
            retry_on_timeout=job.retry.retry_on_timeout,
            guard_timeout_seconds=guard,
            params=backend.submit_request(job.backend, run, settings),
        ).model_dump(),
    }
    if job.max_concurrent_runs is not None:
        payload["slot"] = {"job": job.name, "max": job.max_concurrent_runs}
    return payload


class RunStarter:
    def __init__(self, settings: Settings, table: RunTable, sfn: Any, s3: Any) -> None:
        self._settings = settings
        self._table = table
        self._sfn = sfn
        self._s3 = s3

    def start(
        self, request: RunRequest, *, retry_of: str | None = None, fanout: FanoutItem | None = None
    ) -> StartedRun:
        """Start the run a request names, once however often it is delivered. `retry_of`: the run
        an operator retries; `fanout`: the manifest line the run comes from."""
        check_trigger(request)
        arguments = resolve_arguments(request.job, request.arguments)
        row = new_row(request, self._settings, now_iso(), fanout, retry_of)
        fields, stored = stored_event(request, self._settings)
        data = new_run_data(request, arguments, fields, row["expires_at"], retry_of)
        # What the backend cannot run is refused here, before anything is written.
        stored_execution_input(request.job, data, self._settings)
        if stored is not None:
            self._put_once(stored)
        if (kept := self._table.create_run_data(data)) is not None:
            if stored is not None and kept.get("event_s3_uri") != fields["event_s3_uri"]:
                self._s3.delete_object(Bucket=stored.bucket, Key=stored.key)  # the run keeps the first event
            data = kept
        existing = self._table.create_run(row)
        # A redelivered trigger restarts an execution lost to a crash, never one of a run that
        # has ended meanwhile (an operator may stop a run before its execution began).
        if existing is None or RunStatus(existing["status"]) not in TERMINAL:
            self.start_stored(request.job, existing or row, data)
        return StartedRun(run_id=request.run_id, job=request.job.name, created=existing is None)

    def start_stored(self, job: Job, row: dict[str, Any], data: dict[str, Any] | None = None) -> None:
        """Start the execution of a stored run, from what its data holds (read when not given).
        Standard workflows run a name once: the same run started again (by a duplicate delivery,
        by this one before a crash, by the reconciler) raises ExecutionAlreadyExists or returns
        the same execution."""
        if data is None:
            data = run_data_of(row, self._table.get_run_data(row["run_id"]))
        payload = stored_execution_input(job, data, self._settings)
        try:
            self._sfn.start_execution(
                stateMachineArn=state_machine_arn(self._settings, job),
                name=row["run_id"],
                input=json.dumps(payload, separators=(",", ":")),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ExecutionAlreadyExists":
                raise

    def _put_once(self, stored: StoredEvent) -> None:
        """S3 conditional write: the object is created, never replaced. 412 PreconditionFailed means
        a delivery of the same event stored it already (same key, same content).
        https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html"""
        try:
            self._s3.put_object(
                Bucket=stored.bucket,
                Key=stored.key,
                Body=stored.body,
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "PreconditionFailed":
                raise


def state_machine_arn(settings: Settings, job: Job) -> str:
    """The run state machine of the job's retry policy (jobline_tools.run_machines generates one
    per policy, named `<stack>-run-<policy id>`)."""
    return f"{settings.state_machine_prefix}{job.policy_id}"


def execution_arn(settings: Settings, job: Job, run_id: str) -> str:
    """The ARN of a run's execution (named after the run), known before it exists."""
    return run_view.execution_of(state_machine_arn(settings, job), run_id)


def run_execution_arn(settings: Settings, catalog: Catalog, row: dict[str, Any]) -> str | None:
    """A row's execution: the one its row names (run_view.execution_arn), else the one its job's
    machine gives it (a row written before rows named it); None when its job has left the
    catalog (no machine to name)."""
    if arn := run_view.execution_arn(row, settings.state_machine_prefix):
        return arn
    try:
        return execution_arn(settings, catalog.get(row["job"]), row["run_id"])
    except UnknownJobError:
        return None
