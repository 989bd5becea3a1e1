"""AWS Batch container jobs. Every attempt is its own Batch job, submitted by the submitter
(jobline.submit) and named `<run id>-<attempt>`, so a submit whose response was lost is found by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from jobline.backends.base import (
    ATTEMPT_TAG,
    ATTEMPT_VARIABLE,
    JOB_TAG,
    RUN_ID_TAG,
    Clients,
    EpochMs,
    EventDetail,
    Observation,
    RunSpec,
    StateChangeEvent,
    as_event,
    attempt_name,
    observed,
    require_queue,
    run_attempt_from_name,
    run_attempt_from_tags,
)
from jobline.catalog_base import CatalogModel
from jobline.clock import from_epoch_ms, now_iso
from jobline.status import Reason, RunStatus

if TYPE_CHECKING:
    from jobline.deps import Deps
    from jobline.settings import Settings

TYPE = "batch"
# The vCPU and memory (MiB) pairs a Fargate job may ask for, as the Batch API documents them
# (ResourceRequirement.value: https://docs.aws.amazon.com/batch/latest/APIReference/API_ResourceRequirement.html;
# ECS's task size table agrees: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html).
FARGATE_MEMORY_MIB: dict[float, tuple[int, ...]] = {
    0.25: (512, 1024, 2048),
    0.5: tuple(range(1024, 4096 + 1, 1024)),
    1: tuple(range(2048, 8192 + 1, 1024)),
    2: tuple(range(4096, 16384 + 1, 1024)),
    4: tuple(range(8192, 30720 + 1, 1024)),
    8: tuple(range(16384, 61440 + 1, 4096)),
    16: tuple(range(32768, 122880 + 1, 8192)),
    32: (61440, 122880, 249856),
}


class BatchBackend(CatalogModel):
    """An AWS Batch container job. Every attempt is its own Batch job, so Batch's own retry
    strategy stays at one attempt and the run's strategy lives in the state machine."""

    type: Literal["batch"]
    capacity: Literal["on_demand", "spot", "gpu"] = "on_demand"
    job_queue: str | None = Field(default=None, description="Queue ARN; overrides capacity")
    job_definition: str | None = Field(default=None, description="Name or ARN; default: the stack's")
    command: list[str] | None = None
    vcpu: float = Field(default=1, gt=0, le=256)
    memory_mib: int = Field(default=2048, ge=512, le=2_000_000)
    gpu: int = Field(default=0, ge=0, le=16)

    @model_validator(mode="after")
    def _capacity_fits_resources(self) -> BatchBackend:
        if self.job_queue is None and self.capacity != "gpu" and self.gpu:
            raise ValueError("gpu > 0 needs capacity: gpu (Fargate has no GPUs) or an explicit job_queue")
        return self

    @field_validator("vcpu")
    @classmethod
    def _fargate_vcpu(cls, vcpu: float, info: ValidationInfo) -> float:
        if _on_fargate(info) and vcpu not in FARGATE_MEMORY_MIB:
            raise ValueError(f"vcpu {vcpu:g} is not a Fargate size; use one of {sorted(FARGATE_MEMORY_MIB)}")
        return vcpu

    @field_validator("memory_mib")
    @classmethod
    def _fargate_memory(cls, memory_mib: int, info: ValidationInfo) -> int:
        vcpu = info.data.get("vcpu")  # absent when the vcpu itself was refused
        if _on_fargate(info) and vcpu in FARGATE_MEMORY_MIB and memory_mib not in (sizes := FARGATE_MEMORY_MIB[vcpu]):
            raise ValueError(
                f"{memory_mib} MiB does not fit Fargate's {vcpu:g} vCPU, which takes {sizes[0]}-{sizes[-1]} MiB"
                f" in the steps AWS documents ({', '.join(map(str, sizes))})"
            )
        return memory_mib


def _on_fargate(info: ValidationInfo) -> bool:
    """The stack's on_demand and spot queues are Fargate; an explicit queue's compute is unknown here."""
    return info.data.get("job_queue") is None and info.data.get("capacity") != "gpu"


# AWS Batch job statuses (every JobStatus of the Batch API, checked against botocore's model in
# tests/unit/backends/test_status_vocabularies.py), in the order a job moves through them, and what
# each means for a run.
# Documented in docs/DESIGN.md ("Status mapping").
BATCH_RANK = {
    "SUBMITTED": 0,
    "PENDING": 1,
    "RUNNABLE": 2,
    "STARTING": 3,
    "RUNNING": 4,
    "SUCCEEDED": 5,
    "FAILED": 5,
}
BATCH_STATUS = {
    "SUBMITTED": (RunStatus.STARTING, Reason.IN_QUEUE),
    "PENDING": (RunStatus.STARTING, Reason.IN_QUEUE),
    "RUNNABLE": (RunStatus.STARTING, Reason.IN_QUEUE),
    "STARTING": (RunStatus.STARTING, Reason.STARTING),
    "RUNNING": (RunStatus.RUNNING, Reason.RUNNING),
    "SUCCEEDED": (RunStatus.SUCCEEDED, Reason.COMPLETED),
}
# Batch's statusReason when it kills an attempt at Timeout.attemptDurationSeconds; a reason that only
# mentions a timeout (the job's own message) is not one.
# https://docs.aws.amazon.com/batch/latest/userguide/job_timeouts.html
BATCH_TIMEOUT_REASON = "Job attempt duration exceeded timeout"


def classify_batch_failure(status_reason: str | None, exit_code: int | None) -> tuple[RunStatus, Reason]:
    """Why a FAILED Batch job failed. The state machine's ClassifyFailure states apply the same rules."""
    if status_reason and status_reason.startswith(BATCH_TIMEOUT_REASON):
        return RunStatus.TIMEOUT, Reason.TIMEOUT
    if exit_code is not None and exit_code != 0:
        return RunStatus.FAILED, Reason.NON_ZERO_EXIT_CODE
    return RunStatus.FAILED, Reason.JOB_FAILED


def map_batch_status(batch_status: str, status_reason: str | None, exit_code: int | None) -> tuple[RunStatus, Reason]:
    if batch_status == "FAILED":
        return classify_batch_failure(status_reason, exit_code)
    return BATCH_STATUS[batch_status]


class BatchContainer(EventDetail):
    exitCode: int | None = Field(default=None, ge=-(2**31), le=2**32)  # a container exit status (int32 in Batch)
    logStreamName: str | None = None


class BatchAttempt(EventDetail):
    container: BatchContainer | None = None
    startedAt: EpochMs | None = None
    stoppedAt: EpochMs | None = None
    statusReason: str | None = None


class BatchJobDetail(EventDetail):
    jobName: str
    jobId: str
    jobQueue: str
    status: Literal["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"]
    statusReason: str | None = None
    attempts: list[BatchAttempt] = Field(default_factory=list)
    startedAt: EpochMs | None = None
    stoppedAt: EpochMs | None = None
    container: BatchContainer | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class BatchJobStateChange(StateChangeEvent):
    detail: BatchJobDetail  # type: ignore[assignment]


DETAIL_TYPE = "Batch Job State Change"


def observe_batch(event: BatchJobStateChange, attempt: int) -> dict[str, Any]:
    detail = event.detail
    last = detail.attempts[-1] if detail.attempts else None
    container = detail.container or (last.container if last else None) or BatchContainer()
    return observed(
        event,
        attempt,
        detail.status,
        map_batch_status(detail.status, detail.statusReason, container.exitCode),
        BATCH_RANK[detail.status],
        backend_job_id=detail.jobId,
        started_at=from_epoch_ms(detail.startedAt or (last.startedAt if last else None)),
        stopped_at=from_epoch_ms(detail.stoppedAt or (last.stoppedAt if last else None)),
        exit_code=container.exitCode,
        log_stream=container.logStreamName,
        status_reason=detail.statusReason,
    )


def job_queue(backend: BatchBackend, job_name: str, settings: Settings) -> str:
    queue = (
        backend.job_queue
        or {
            "on_demand": settings.job_queue_on_demand_arn,
            "spot": settings.job_queue_spot_arn,
            "gpu": settings.job_queue_gpu_arn,
        }[backend.capacity]
    )
    return require_queue(queue, job_name, backend.capacity)


class Batch:
    type = TYPE
    model = BatchBackend
    events = {DETAIL_TYPE: BatchJobStateChange}
    inline_event_limit = None  # Batch takes a large environment: Settings.inline_event_limit_bytes
    job_name_limit = None
    job_console_path = "/batch/home?region={region}#jobs/detail/{job_id}"

    submit_api = "SubmitJob"

    def submit_request(self, backend: BatchBackend, run: RunSpec, settings: Settings) -> dict[str, Any]:
        """SubmitJob's request in boto3's shape (https://docs.aws.amazon.com/batch/latest/APIReference/API_SubmitJob.html),
        each attempt's name, JOBLINE_ATTEMPT and jobline:attempt tag aside."""
        resources = [
            {"type": "VCPU", "value": f"{backend.vcpu:g}"},
            {"type": "MEMORY", "value": str(backend.memory_mib)},
        ]
        if backend.gpu:
            resources.append({"type": "GPU", "value": str(backend.gpu)})
        overrides: dict[str, Any] = {
            "resourceRequirements": resources,
            "environment": [{"name": k, "value": v} for k, v in run.environment.items()],
        }
        if backend.command:
            overrides["command"] = backend.command
        default_definition = (
            settings.gpu_job_definition_arn if backend.capacity == "gpu" else settings.default_job_definition_arn
        )
        return {
            "jobQueue": job_queue(backend, run.job_name, settings),
            "jobDefinition": backend.job_definition or default_definition,
            "parameters": run.arguments,
            "timeout": {"attemptDurationSeconds": run.timeout_seconds},
            # One Batch attempt per job whatever the job definition says: the run's retry strategy
            # is the state machine's, and each of its attempts is its own job.
            "retryStrategy": {"attempts": 1},
            "containerOverrides": overrides,
            "tags": {RUN_ID_TAG: run.run_id, JOB_TAG: run.job_name},
        }

    def submit(self, request: dict[str, Any], run_id: str, attempt: int, clients: Clients) -> str:
        overrides = request["containerOverrides"]
        variable = {"name": ATTEMPT_VARIABLE, "value": str(attempt)}
        response = clients("batch").submit_job(
            **{
                **request,
                "jobName": attempt_name(run_id, attempt),
                "containerOverrides": {**overrides, "environment": [*overrides["environment"], variable]},
                "tags": {**request["tags"], ATTEMPT_TAG: str(attempt)},
            }
        )
        return str(response["jobId"])

    def find_submitted(self, request: dict[str, Any], run_id: str, attempt: int, clients: Clients) -> str | None:
        """SubmitJob takes no idempotency token: the attempt's job is found by its name. With a
        filter ListJobs ignores jobStatus and lists jobs of every status; JOB_NAME matches without
        case, so the name is compared exactly (https://docs.aws.amazon.com/batch/latest/APIReference/API_ListJobs.html)."""
        name = attempt_name(run_id, attempt)
        pages = (
            clients("batch")
            .get_paginator("list_jobs")
            .paginate(jobQueue=request["jobQueue"], filters=[{"name": "JOB_NAME", "values": [name]}])
        )
        found = (job["jobId"] for page in pages for job in page["jobSummaryList"] if job["jobName"] == name)
        return next(found, None)

    def observe(self, event: BatchJobStateChange, glue: Any) -> Observation | None:
        identity = run_attempt_from_tags(event.detail.tags) or run_attempt_from_name(event.detail.jobName)
        return identity and Observation(*identity, observe_batch(event, identity[1]))

    def describe(self, row: dict[str, Any], attempt: int, record: dict[str, Any], deps: Deps) -> Any | None:
        if not record.get("backend_job_id"):
            return None
        jobs = deps.client("batch").describe_jobs(jobs=[record["backend_job_id"]])["jobs"]
        return jobs and as_event(BatchJobStateChange, "aws.batch", DETAIL_TYPE, jobs[0], now_iso())

    def stop(self, row: dict[str, Any], attempt: int, record: dict[str, Any], reason: str, deps: Deps) -> str | None:
        # Stopping the execution leaves the job running (it was not submitted with .sync).
        if not (job_id := record.get("backend_job_id")):
            return None
        deps.client("batch").terminate_job(jobId=job_id, reason=reason)
        return str(job_id)


BACKEND = Batch()
