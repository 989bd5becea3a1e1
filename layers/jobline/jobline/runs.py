"""Starting runs: check arguments, write the row once, start the execution once.

The row is written (PENDING) before the execution starts, and the execution is named after the
run, so a duplicate trigger finds the row, starts nothing new and gets the same run id back.
A crash between the two steps heals on redelivery: the row exists, the start is repeated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from jobline.backends import BACKENDS, RunSpec
from jobline.catalog import Job
from jobline.clock import now_iso, parse_iso_z
from jobline.dal import RunTable
from jobline.errors import InvalidArguments
from jobline.settings import Settings
from jobline.status import RANK_PENDING, TERMINAL, Reason, RunStatus
from jobline.triggers import RunRequest

# Waiting in a queue is not part of a job's own timeout, so the state machine's guard on one
# attempt (against a Batch job whose end is never reported) allows this much beyond it.
QUEUE_ALLOWANCE_SECONDS = 6 * 3600


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
        if len(value) > param.max_length:
            raise InvalidArguments(
                f"job {job.name!r}: argument {name!r} is {len(value)} characters,"
                f" over its max_length {param.max_length}"
            )
        resolved[name] = value
    return resolved


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
    }


def trigger_event_variable(request: RunRequest, settings: Settings, s3: Any) -> dict[str, str]:
    """The trigger event for the job: inline when small, else an S3 reference (never truncated)."""
    body = json.dumps(request.trigger.event, separators=(",", ":"), default=str)
    limit = BACKENDS[request.job.backend.type].inline_event_limit or settings.inline_event_limit_bytes
    if len(body.encode()) <= limit:
        return {"JOBLINE_TRIGGER_EVENT": body}
    key = f"trigger-events/{request.run_id}.json"
    s3.put_object(Bucket=settings.run_data_bucket, Key=key, Body=body.encode(), ContentType="application/json")
    return {"JOBLINE_TRIGGER_EVENT_S3_URI": f"s3://{settings.run_data_bucket}/{key}"}


def job_environment(request: RunRequest, arguments: dict[str, str], event_variable: dict[str, str]) -> dict[str, str]:
    """What every attempt of the job sees, JOBLINE_ATTEMPT aside (the state machine adds it)."""
    job = request.job
    return {
        **job.environment,
        "JOBLINE_RUN_ID": request.run_id,
        "JOBLINE_JOB_NAME": job.name,
        "JOBLINE_MAX_ATTEMPTS": str(job.retry.attempts),
        **event_variable,
        **{f"JOBLINE_ARG_{name.upper()}": value for name, value in arguments.items()},
    }


def execution_input(
    request: RunRequest, arguments: dict[str, str], event_variable: dict[str, str], settings: Settings
) -> dict[str, Any]:
    """What the state machine needs for every attempt; per-attempt values are added in ASL."""
    job = request.job
    environment = job_environment(request, arguments, event_variable)
    run = RunSpec(
        run_id=request.run_id,
        job_name=job.name,
        timeout_seconds=job.timeout_seconds,
        max_attempts=job.retry.attempts,
        arguments=arguments,
        environment=environment,
    )
    backend_input = BACKENDS[job.backend.type].execution_input(job.backend, run, settings)
    return {
        "run_id": request.run_id,
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
        arguments = resolve_arguments(request.job, request.arguments)
        event_variable = trigger_event_variable(request, self._settings, self._s3)
        payload = execution_input(request, arguments, event_variable, self._settings)
        row = new_row(request, arguments, self._settings, now_iso())
        if (event := event_variable.get("JOBLINE_TRIGGER_EVENT")) is not None:
            row["trigger"]["event"] = event
        else:
            row["trigger"]["event_s3_uri"] = event_variable["JOBLINE_TRIGGER_EVENT_S3_URI"]
        created = self._table.create_run(row)
        # A redelivered trigger restarts an execution lost to a crash, never one of a run that
        # has ended meanwhile (an operator may stop a run before its execution began).
        if created or not self._has_ended(request.run_id):
            self._start_execution(request.run_id, payload)
        return StartedRun(run_id=request.run_id, job=request.job.name, created=created)

    def _has_ended(self, run_id: str) -> bool:
        existing = self._table.get_run(run_id)
        return existing is not None and RunStatus(existing["status"]) in TERMINAL

    def _start_execution(self, run_id: str, payload: dict[str, Any]) -> None:
        try:
            self._sfn.start_execution(
                stateMachineArn=self._settings.state_machine_arn,
                name=run_id,
                input=json.dumps(payload, separators=(",", ":")),
            )
        except ClientError as error:
            # The same run was started before: by a duplicate delivery, or by this delivery
            # before a crash. Standard workflows run a name once; nothing more to do.
            if error.response["Error"]["Code"] != "ExecutionAlreadyExists":
                raise
