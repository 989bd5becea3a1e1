"""Starting runs: check arguments, write the row once, start the execution once.

The row is written (PENDING) before the execution starts, and the execution is named after the
run, so a duplicate trigger finds the row, starts nothing new and gets the same run id back.
A crash between the two steps heals on redelivery: the row exists, the start is repeated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from jobline.catalog import Job
from jobline.dal import RunTable
from jobline.errors import InvalidArguments, RejectedInput
from jobline.settings import Settings
from jobline.status import RANK_PENDING, Reason, RunStatus
from jobline.triggers import RunRequest

# Waiting in a queue is not part of a job's own timeout, so the state machine's guard on one
# attempt (against a Batch job whose end is never reported) allows this much beyond it.
QUEUE_ALLOWANCE_SECONDS = 6 * 3600


@dataclass(frozen=True)
class StartedRun:
    run_id: str
    job: str
    created: bool


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
    created_epoch = int(datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp())
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
    if len(body.encode()) <= settings.inline_event_limit_bytes:
        return {"JOBLINE_TRIGGER_EVENT": body}
    key = f"trigger-events/{request.run_id}.json"
    s3.put_object(Bucket=settings.run_data_bucket, Key=key, Body=body.encode(), ContentType="application/json")
    return {"JOBLINE_TRIGGER_EVENT_S3_URI": f"s3://{settings.run_data_bucket}/{key}"}


def _job_queue(job: Job, settings: Settings) -> str:
    backend = job.backend
    queue = (
        backend.job_queue
        or {
            "on_demand": settings.job_queue_on_demand_arn,
            "spot": settings.job_queue_spot_arn,
            "gpu": settings.job_queue_gpu_arn,
        }[backend.capacity]
    )
    if not queue:
        raise RejectedInput(
            f"job {job.name!r} needs the {backend.capacity} job queue, which this stack does not have "
            "(deploy with EnableGpuCompute=true or give the job an explicit job_queue)"
        )
    return queue


def execution_input(
    request: RunRequest, arguments: dict[str, str], event_variable: dict[str, str], settings: Settings
) -> dict[str, Any]:
    """What the state machine needs for every attempt; per-attempt values are added in ASL."""
    job, backend = request.job, request.job.backend
    environment = {
        **job.environment,
        "JOBLINE_RUN_ID": request.run_id,
        "JOBLINE_JOB_NAME": job.name,
        "JOBLINE_MAX_ATTEMPTS": str(job.retry.attempts),
        **event_variable,
        **{f"JOBLINE_ARG_{name.upper()}": value for name, value in arguments.items()},
    }
    resources = [{"Type": "VCPU", "Value": f"{backend.vcpu:g}"}, {"Type": "MEMORY", "Value": str(backend.memory_mib)}]
    if backend.gpu:
        resources.append({"Type": "GPU", "Value": str(backend.gpu)})
    overrides: dict[str, Any] = {"ResourceRequirements": resources}
    if backend.command:
        overrides["Command"] = backend.command
    # ASL has no array concatenation, so the state machine appends JOBLINE_ATTEMPT to this JSON
    # text with States.Format and parses it back (see PrepareAttempt in run.asl.json).
    environment_tail = "".join(
        "," + json.dumps({"Name": k, "Value": v}, separators=(",", ":")) for k, v in environment.items()
    )
    return {
        "run_id": request.run_id,
        "job": job.name,
        "backend": backend.type,
        "max_attempts": job.retry.attempts,
        "retry_on_timeout": job.retry.retry_on_timeout,
        # Index i is the wait before attempt i + 2; padded so any attempt can index it.
        "retry_delays": [*job.retry.delays(), 0],
        "max_concurrent_runs": job.max_concurrent_runs,
        "guard_timeout_seconds": job.timeout_seconds + QUEUE_ALLOWANCE_SECONDS,
        "environment_tail": environment_tail,
        "batch": {
            "JobQueue": _job_queue(job, settings),
            "JobDefinition": backend.job_definition
            or (settings.gpu_job_definition_arn if backend.capacity == "gpu" else settings.default_job_definition_arn),
            "AttemptDurationSeconds": job.timeout_seconds,
            "ContainerOverrides": overrides,
            "Parameters": arguments,
        },
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
        self._start_execution(request.run_id, payload)
        return StartedRun(run_id=request.run_id, job=request.job.name, created=created)

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
