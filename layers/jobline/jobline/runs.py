"""Starting runs: check arguments, write the trigger event and the row once, start the execution once.

Everything that can refuse a request is checked before anything is written. A trigger event too
large to inline is stored first, content-addressed and with S3's conditional write
(If-None-Match: *), so no object is ever replaced; then the row is written (PENDING) with a
condition that it does not exist. Whoever creates the row decides the run's trigger event: a
duplicate delivery removes the object it stored if the row does not point to it, and starts the
execution with the input built from the stored row, never from its own delivery, so the row, the
execution and the job all see the creator's event. The execution is named after the run, so it
starts once. A crash between the row and the start heals on redelivery or at the reconciler's
next sweep (RunStarter.start_stored).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from jobline.backends import BACKENDS, RunSpec
from jobline.catalog import Job
from jobline.clock import now_iso, parse_iso_z
from jobline.dal import RunTable
from jobline.errors import InvalidArguments, MalformedEvent
from jobline.settings import Settings
from jobline.status import RANK_PENDING, TERMINAL, Reason, RunStatus
from jobline.triggers import RunRequest

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


def new_row(request: RunRequest, arguments: dict[str, str], settings: Settings, created_at: str) -> dict[str, Any]:
    job = request.job
    # TTL: retention counted from the latest moment the run can still be going, so a row is
    # never expired while its run may be live (the state machine cannot compute epoch times).
    longest = job.retry.attempts * (job.timeout_seconds + QUEUE_ALLOWANCE_SECONDS) + sum(job.retry.delays())
    created_epoch = int(parse_iso_z(created_at).timestamp())
    return {
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
        "retry_on_timeout": job.retry.retry_on_timeout,
        "attempts": {},
        "trigger": {"type": request.trigger.type, "key": request.trigger.key, "source": request.trigger.source},
        "arguments": arguments,
        "created_at": created_at,
        "updated_at": created_at,
        "expires_at": created_epoch + longest + settings.run_retention_days * 86_400,
        "version": 1,
        # Only items of a fan-out carry these (the sparse by-fanout index lists a fan-out's runs).
        **({"fanout_id": request.fanout_id, "fanout_line": request.fanout_line} if request.fanout_id else {}),
    }


def stored_event(request: RunRequest, settings: Settings) -> tuple[dict[str, str], StoredEvent | None]:
    """The row's `trigger` event fields: the event inline when small, else a reference to the S3
    object it is stored in (never truncated); and that object, when there is one to write."""
    body = json.dumps(request.trigger.event, separators=(",", ":"), default=str).encode()
    limit = BACKENDS[request.job.backend.type].inline_event_limit or settings.inline_event_limit_bytes
    if len(body) <= limit:
        return {"event": body.decode()}, None
    # Content-addressed: redeliveries of one event share an object, different events never do.
    key = f"trigger-events/{request.run_id}/{hashlib.sha256(body).hexdigest()[:32]}.json"
    return {"event_s3_uri": f"s3://{settings.run_data_bucket}/{key}"}, StoredEvent(settings.run_data_bucket, key, body)


def event_variable(row: dict[str, Any]) -> dict[str, str]:
    """How the job gets the row's trigger event: inline, or as the URI of its S3 object."""
    trigger = row["trigger"]
    if "event_s3_uri" in trigger:
        return {"JOBLINE_TRIGGER_EVENT_S3_URI": trigger["event_s3_uri"]}
    return {"JOBLINE_TRIGGER_EVENT": trigger["event"]}


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


def execution_input(
    request: RunRequest, arguments: dict[str, str], event_variable: dict[str, str], settings: Settings
) -> dict[str, Any]:
    """What the state machine needs for every attempt; per-attempt values are added in ASL."""
    return _execution_input(request.job, request.run_id, arguments, event_variable, settings)


def stored_execution_input(job: Job, row: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The execution input of a stored run: its arguments and trigger event as its row holds them."""
    return _execution_input(job, row["run_id"], row["arguments"], event_variable(row), settings)


def _execution_input(
    job: Job, run_id: str, arguments: dict[str, str], event_variable: dict[str, str], settings: Settings
) -> dict[str, Any]:
    environment = job_environment(job, run_id, arguments, event_variable)
    run = RunSpec(
        run_id=run_id,
        job_name=job.name,
        timeout_seconds=job.timeout_seconds,
        max_attempts=job.retry.attempts,
        arguments=arguments,
        environment=environment,
    )
    backend_input = BACKENDS[job.backend.type].execution_input(job.backend, run, settings)
    return {
        "run_id": run_id,
        "job": job.name,
        "backend": job.backend.type,
        "max_attempts": job.retry.attempts,
        "retry_on_timeout": job.retry.retry_on_timeout,
        # Index i is the wait before attempt i + 2; padded so any attempt can index it.
        "retry_delays": [*job.retry.delays(), 0],
        "max_concurrent_runs": job.max_concurrent_runs,
        "guard_timeout_seconds": job.timeout_seconds + QUEUE_ALLOWANCE_SECONDS,
        **backend_input,
    }


class RunStarter:
    def __init__(self, settings: Settings, table: RunTable, sfn: Any, s3: Any) -> None:
        self._settings = settings
        self._table = table
        self._sfn = sfn
        self._s3 = s3

    def start(self, request: RunRequest) -> StartedRun:
        check_trigger(request)
        arguments = resolve_arguments(request.job, request.arguments)
        row = new_row(request, arguments, self._settings, now_iso())
        fields, stored = stored_event(request, self._settings)
        row["trigger"].update(fields)
        # What the backend cannot run is refused here, before anything is written.
        stored_execution_input(request.job, row, self._settings)
        if stored is not None:
            self._put_once(stored)
        created = self._table.create_run(row)
        if not created:
            row = self._table.get_run(request.run_id) or row
            if stored is not None and row["trigger"].get("event_s3_uri") != fields["event_s3_uri"]:
                self._s3.delete_object(Bucket=stored.bucket, Key=stored.key)  # the row keeps the creator's event
        # A redelivered trigger restarts an execution lost to a crash, never one of a run that
        # has ended meanwhile (an operator may stop a run before its execution began).
        if created or RunStatus(row["status"]) not in TERMINAL:
            self.start_stored(request.job, row)
        return StartedRun(run_id=request.run_id, job=request.job.name, created=created)

    def start_stored(self, job: Job, row: dict[str, Any]) -> None:
        """Start the execution of a stored run, from what its row holds. Standard workflows run a
        name once: the same run started again (by a duplicate delivery, by this one before a
        crash, by the reconciler) raises ExecutionAlreadyExists or returns the same execution."""
        payload = stored_execution_input(job, row, self._settings)
        try:
            self._sfn.start_execution(
                stateMachineArn=self._settings.state_machine_arn,
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


def execution_arn(settings: Settings, run_id: str) -> str:
    """The ARN of a run's execution (named after the run), known before it exists."""
    machine = settings.state_machine_arn
    return f"{machine.replace(':stateMachine:', ':execution:', 1)}:{run_id}"
