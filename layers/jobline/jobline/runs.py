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

from jobline.catalog import SERVICE_PAYLOAD_LIMIT_BYTES, BatchBackend, BatchServiceBackend, Job
from jobline.dal import RunTable
from jobline.errors import InvalidArguments, RejectedInput
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


# Where the trigger event can travel inline: Batch takes a large environment; SageMaker caps each
# environment value at 256 characters; Glue arguments are kept small to stay readable in its console.
INLINE_EVENT_LIMITS = {"batch_service": 256, "sagemaker_processing": 256, "glue": 4096}


def trigger_event_variable(request: RunRequest, settings: Settings, s3: Any) -> dict[str, str]:
    """The trigger event for the job: inline when small, else an S3 reference (never truncated)."""
    body = json.dumps(request.trigger.event, separators=(",", ":"), default=str)
    limit = INLINE_EVENT_LIMITS.get(request.job.backend.type, settings.inline_event_limit_bytes)
    if len(body.encode()) <= limit:
        return {"JOBLINE_TRIGGER_EVENT": body}
    key = f"trigger-events/{request.run_id}.json"
    s3.put_object(Bucket=settings.run_data_bucket, Key=key, Body=body.encode(), ContentType="application/json")
    return {"JOBLINE_TRIGGER_EVENT_S3_URI": f"s3://{settings.run_data_bucket}/{key}"}


def _job_queue(job: Job, settings: Settings) -> str:
    backend = job.backend
    if isinstance(backend, BatchServiceBackend):
        queue, needs = backend.job_queue or settings.service_job_queue_arn, "service"
    elif isinstance(backend, BatchBackend):
        needs = backend.capacity
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
            f"job {job.name!r} needs the {needs} job queue, which this stack does not have "
            "(deploy with EnableGpuCompute=true or give the job an explicit job_queue)"
        )
    return queue


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


def _batch_input(
    request: RunRequest, arguments: dict[str, str], environment: dict[str, str], settings: Settings
) -> dict:
    job, backend = request.job, request.job.backend
    resources = [{"Type": "VCPU", "Value": f"{backend.vcpu:g}"}, {"Type": "MEMORY", "Value": str(backend.memory_mib)}]
    if backend.gpu:
        resources.append({"Type": "GPU", "Value": str(backend.gpu)})
    overrides: dict[str, Any] = {"ResourceRequirements": resources}
    if backend.command:
        overrides["Command"] = backend.command
    default_definition = (
        settings.gpu_job_definition_arn if backend.capacity == "gpu" else settings.default_job_definition_arn
    )
    return {
        # ASL has no array concatenation, so the state machine appends JOBLINE_ATTEMPT to this JSON
        # text with States.Format and parses it back (see BuildAttemptEnvironment in run.asl.json).
        "environment_tail": "".join(
            "," + json.dumps({"Name": k, "Value": v}, separators=(",", ":")) for k, v in environment.items()
        ),
        "batch": {
            "JobQueue": _job_queue(job, settings),
            "JobDefinition": backend.job_definition or default_definition,
            "AttemptDurationSeconds": job.timeout_seconds,
            "ContainerOverrides": overrides,
            "Parameters": arguments,
        },
    }


ATTEMPT_MARK = "\u0000jobline-attempt\u0000"


def _service_input(request: RunRequest, environment: dict[str, str], settings: Settings) -> dict:
    """The training request goes as serviceRequestPayload, a JSON string with the attempt number in
    two places (environment and tags): split around them so the state machine can join it."""
    job, backend = request.job, request.job.backend
    training = {
        "StoppingCondition": {"MaxRuntimeInSeconds": job.timeout_seconds},
        "RoleArn": settings.sagemaker_role_arn,
        **backend.training,
        "Environment": {**backend.training.get("Environment", {}), **environment, "JOBLINE_ATTEMPT": ATTEMPT_MARK},
        "Tags": [
            *backend.training.get("Tags", []),
            {"Key": "jobline:run-id", "Value": request.run_id},
            {"Key": "jobline:attempt", "Value": ATTEMPT_MARK},
        ],
    }
    text = json.dumps(training, separators=(",", ":"))
    longest = len(text.replace(json.dumps(ATTEMPT_MARK)[1:-1], str(job.retry.attempts)).encode())
    if longest > SERVICE_PAYLOAD_LIMIT_BYTES:
        raise InvalidArguments(
            f"job {job.name!r}: the training request with this run's environment is {longest} bytes,"
            f" over the {SERVICE_PAYLOAD_LIMIT_BYTES}-byte serviceRequestPayload limit"
        )
    service: dict[str, Any] = {
        "JobQueue": _job_queue(job, settings),
        "PayloadParts": text.split(json.dumps(ATTEMPT_MARK)[1:-1]),
        "AttemptDurationSeconds": job.timeout_seconds,
    }
    if backend.scheduling_priority is not None:
        service["SchedulingPriority"] = backend.scheduling_priority
    if backend.share_identifier is not None:
        service["ShareIdentifier"] = backend.share_identifier
    return {"service": service}


def _processing_input(request: RunRequest, environment: dict[str, str], settings: Settings) -> dict:
    job, backend = request.job, request.job.backend
    if too_long := sorted(k for k, v in environment.items() if len(v) > 256):
        raise InvalidArguments(f"job {job.name!r}: SageMaker environment values are at most 256 characters: {too_long}")
    app: dict[str, Any] = {"ImageUri": backend.image_uri}
    if backend.entrypoint:
        app["ContainerEntrypoint"] = backend.entrypoint
    if backend.arguments:
        app["ContainerArguments"] = backend.arguments
    return {
        "processing": {
            "AppSpecification": app,
            "Environment": environment,
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": backend.instance_count,
                    "InstanceType": backend.instance_type,
                    "VolumeSizeInGB": backend.volume_size_gb,
                }
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": job.timeout_seconds},
            "RoleArn": backend.role_arn or settings.sagemaker_role_arn,
            "NetworkConfig": {"EnableNetworkIsolation": backend.network_isolation},
            "ProcessingInputs": [
                {
                    "InputName": c.name,
                    "S3Input": {
                        "S3Uri": c.s3_uri,
                        "LocalPath": c.local_path,
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                    },
                }
                for c in backend.inputs
            ],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": c.name,
                        "S3Output": {"S3Uri": c.s3_uri, "LocalPath": c.local_path, "S3UploadMode": "EndOfJob"},
                    }
                    for c in backend.outputs
                ]
            },
        }
    }


def _glue_input(request: RunRequest, environment: dict[str, str], settings: Settings) -> dict:
    job, backend = request.job, request.job.backend
    job_name = backend.job_name or settings.glue_job_name
    if not job_name:
        raise RejectedInput(f"job {job.name!r} names no Glue job and the stack has no default one")
    return {
        "glue": {
            "JobName": job_name,
            # Glue passes job parameters as --name arguments; the job reads them with getResolvedOptions.
            "Arguments": {**backend.arguments, **{f"--{k.lower()}": v for k, v in environment.items()}},
            "WorkerType": backend.worker_type,
            "NumberOfWorkers": backend.number_of_workers,
            "Timeout": -(-job.timeout_seconds // 60),
            "ExecutionClass": backend.execution_class,
        }
    }


def execution_input(
    request: RunRequest, arguments: dict[str, str], event_variable: dict[str, str], settings: Settings
) -> dict[str, Any]:
    """What the state machine needs for every attempt; per-attempt values are added in ASL."""
    job = request.job
    environment = job_environment(request, arguments, event_variable)
    backend_input = {
        "batch": lambda: _batch_input(request, arguments, environment, settings),
        "batch_service": lambda: _service_input(request, environment, settings),
        "sagemaker_processing": lambda: _processing_input(request, environment, settings),
        "glue": lambda: _glue_input(request, environment, settings),
    }[job.backend.type]()
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
