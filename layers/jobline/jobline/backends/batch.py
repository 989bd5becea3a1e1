"""AWS Batch container jobs. Every attempt is its own Batch job, submitted with `.sync`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from jobline.backends.base import (
    EpochMs,
    EventDetail,
    Observation,
    RunSpec,
    StateChangeEvent,
    as_event,
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
FARGATE_VCPUS = {0.25, 0.5, 1, 2, 4, 8, 16}


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
        if self.job_queue is None and self.capacity != "gpu" and self.vcpu not in FARGATE_VCPUS:
            raise ValueError(f"vcpu {self.vcpu} is not a Fargate size; use one of {sorted(FARGATE_VCPUS)}")
        return self


# AWS Batch job statuses, in the order a job moves through them, and what each means for a run.
# Documented in docs/ARCHITECTURE.md ("Status mapping").
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
# Batch's statusReason when it kills an attempt at Timeout.attemptDurationSeconds.
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

    def execution_input(self, backend: BatchBackend, run: RunSpec, settings: Settings) -> dict[str, Any]:
        resources = [
            {"Type": "VCPU", "Value": f"{backend.vcpu:g}"},
            {"Type": "MEMORY", "Value": str(backend.memory_mib)},
        ]
        if backend.gpu:
            resources.append({"Type": "GPU", "Value": str(backend.gpu)})
        overrides: dict[str, Any] = {"ResourceRequirements": resources}
        if backend.command:
            overrides["Command"] = backend.command
        default_definition = (
            settings.gpu_job_definition_arn if backend.capacity == "gpu" else settings.default_job_definition_arn
        )
        return {
            "batch": {
                "JobQueue": job_queue(backend, run.job_name, settings),
                "JobDefinition": backend.job_definition or default_definition,
                "AttemptDurationSeconds": run.timeout_seconds,
                "ContainerOverrides": overrides,
                "Parameters": run.arguments,
                # The state machine appends JOBLINE_ATTEMPT as a list item (BuildAttemptEnvironment).
                "Environment": [{"Name": k, "Value": v} for k, v in run.environment.items()],
            },
        }

    def observe(self, event: BatchJobStateChange, glue: Any) -> Observation | None:
        identity = run_attempt_from_tags(event.detail.tags) or run_attempt_from_name(event.detail.jobName)
        return identity and Observation(*identity, observe_batch(event, identity[1]))

    def describe(self, row: dict[str, Any], attempt: int, record: dict[str, Any], deps: Deps) -> Any | None:
        if not record.get("backend_job_id"):
            return None
        jobs = deps.client("batch").describe_jobs(jobs=[record["backend_job_id"]])["jobs"]
        return jobs and as_event(BatchJobStateChange, "aws.batch", DETAIL_TYPE, jobs[0], now_iso())

    def stop(self, row: dict[str, Any], attempt: int, record: dict[str, Any], reason: str, deps: Deps) -> str | None:
        # Step Functions stops a .sync job with its execution; this is belt and braces.
        if not (job_id := record.get("backend_job_id")):
            return None
        deps.client("batch").terminate_job(jobId=job_id, reason=reason)
        return str(job_id)


BACKEND = Batch()
