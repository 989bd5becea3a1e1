"""SageMaker training through an AWS Batch service job queue (SubmitServiceJob).

The submitter (jobline.submit) submits each attempt with its name as the clientToken, so a resubmit
is the same request; the attempt's terminal event answers the execution's task token
(jobline.state_changes). SageMaker training events only add detail to the service job's attempt;
the service job's events drive the status.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError
from pydantic import Field, field_validator

from jobline.backends.base import (
    ATTEMPT_TAG,
    ATTEMPT_VARIABLE,
    JOB_TAG,
    RUN_ID_TAG,
    SAGEMAKER_NAME_LIMIT,
    STACK_ROLE_ONLY,
    AttemptDetail,
    Clients,
    EpochMs,
    EventDetail,
    Observation,
    RunSpec,
    StateChangeEvent,
    as_event,
    attempt_name,
    bounded,
    max_runtime_exceeded,
    observed,
    require_queue,
    run_attempt_from_name,
    run_attempt_from_tags,
    tiebreak,
)
from jobline.backends.batch import BATCH_TIMEOUT_REASON
from jobline.backends.sagemaker_processing import SAGEMAKER_RANK
from jobline.catalog_base import CatalogModel
from jobline.clock import from_epoch_ms, iso_z, now_iso
from jobline.errors import InvalidArguments
from jobline.status import Reason, RunStatus

if TYPE_CHECKING:
    from jobline.deps import Deps
    from jobline.settings import Settings

TYPE = "batch_service"
SERVICE_PAYLOAD_LIMIT_BYTES = 10 * 1024  # SubmitServiceJob's serviceRequestPayload quota
# CreateTrainingJob's Environment (botocore's SageMaker model): at most 100 variables of 512 characters.
TRAINING_ENVIRONMENT_ENTRIES = 100
TRAINING_ENVIRONMENT_VALUE_LIMIT = 512


class BatchServiceBackend(CatalogModel):
    """SageMaker training through an AWS Batch service job queue (SubmitServiceJob)."""

    type: Literal["batch_service"]
    job_queue: str | None = Field(default=None, description="Service job queue ARN; default: the stack's")
    training: dict[str, Any] = Field(
        description="CreateTrainingJob request without TrainingJobName or RoleArn; sent as serviceRequestPayload"
    )
    scheduling_priority: int | None = Field(default=None, ge=0, le=9999)
    share_identifier: str | None = Field(default=None, max_length=255)

    @field_validator("training")
    @classmethod
    def _payload(cls, training: dict[str, Any]) -> dict[str, Any]:
        if "TrainingJobName" in training:
            raise ValueError("TrainingJobName is set by jobline from the run id; remove it")
        if "RoleArn" in training:
            raise ValueError(STACK_ROLE_ONLY.format(field="training.RoleArn"))
        for required in ("AlgorithmSpecification", "ResourceConfig", "OutputDataConfig"):
            if required not in training:
                raise ValueError(f"the training request needs {required}")
        size = len(json.dumps(training, separators=(",", ":")).encode())
        # Room is kept for what each run adds (its environment): see BatchService.submit_request.
        if size > SERVICE_PAYLOAD_LIMIT_BYTES // 2:
            raise ValueError(f"the training request is {size} bytes; at most {SERVICE_PAYLOAD_LIMIT_BYTES // 2}")
        return training


# A capacity shortfall sends a job from SCHEDULED back to RUNNABLE without using an attempt, so
# the two share a rank and the event time orders them.
SERVICE_RANK = {
    "SUBMITTED": 0,
    "PENDING": 1,
    "RUNNABLE": 2,
    "SCHEDULED": 2,
    "STARTING": 3,
    "RUNNING": 4,
    "SUCCEEDED": 5,
    "FAILED": 5,
}
SERVICE_STATUS = {
    "SUBMITTED": (RunStatus.STARTING, Reason.IN_QUEUE),
    "PENDING": (RunStatus.STARTING, Reason.IN_QUEUE),
    "RUNNABLE": (RunStatus.STARTING, Reason.IN_QUEUE),
    "SCHEDULED": (RunStatus.STARTING, Reason.SCHEDULED),
    "STARTING": (RunStatus.STARTING, Reason.STARTING),
    "RUNNING": (RunStatus.RUNNING, Reason.RUNNING),
    "SUCCEEDED": (RunStatus.SUCCEEDED, Reason.COMPLETED),
}


def ran_out_of_time(status_reason: str | None) -> bool:
    """A service job ran out of time when Batch ended its attempt at timeoutConfig.attemptDurationSeconds
    (Batch's own timeout reason, as for container jobs) or SageMaker stopped its training job at
    StoppingCondition.MaxRuntimeInSeconds (Batch relays SageMaker's MaxRuntimeExceeded)."""
    if not status_reason:
        return False
    return status_reason.startswith(BATCH_TIMEOUT_REASON) or max_runtime_exceeded(status_reason)


def map_service_status(status: str, status_reason: str | None) -> tuple[RunStatus, Reason]:
    """Batch service job statuses (every ServiceJobStatus of the Batch API). A SageMaker job that was
    stopped or ran out of time ends FAILED in Batch; the reason tells them apart.
    https://docs.aws.amazon.com/batch/latest/userguide/service-job-status.html"""
    if status == "FAILED" and ran_out_of_time(status_reason):
        return RunStatus.TIMEOUT, Reason.TIMEOUT
    if status == "FAILED":
        return RunStatus.FAILED, Reason.JOB_FAILED
    return SERVICE_STATUS[status]


class ServiceResourceId(EventDetail):
    name: str
    value: str


class ServiceAttempt(EventDetail):
    serviceResourceId: ServiceResourceId | None = None
    startedAt: EpochMs | None = None
    stoppedAt: EpochMs | None = None
    statusReason: str | None = None


class ServiceJobDetail(EventDetail):
    jobName: str
    jobId: str
    jobQueue: str
    serviceJobType: str | None = None
    status: Literal["SUBMITTED", "PENDING", "RUNNABLE", "SCHEDULED", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"]
    statusReason: str | None = None
    attempts: list[ServiceAttempt] = Field(default_factory=list)
    # The attempt in progress (or the last one): the only place the training job's ARN may be yet.
    latestAttempt: ServiceAttempt | None = None
    startedAt: EpochMs | None = None
    stoppedAt: EpochMs | None = None


class TrainingJobDetail(EventDetail):
    TrainingJobName: str
    TrainingJobArn: str | None = None
    TrainingJobStatus: Literal["InProgress", "Completed", "Failed", "Stopping", "Stopped", "Deleting"]
    SecondaryStatus: str | None = None
    FailureReason: str | None = None
    Tags: dict[str, str] = Field(default_factory=dict)


class ServiceJobStateChange(StateChangeEvent):
    detail: ServiceJobDetail  # type: ignore[assignment]


class TrainingJobStateChange(StateChangeEvent):
    detail: TrainingJobDetail  # type: ignore[assignment]


DETAIL_TYPE = "Batch Service Job State Change"
TRAINING_DETAIL_TYPE = "SageMaker Training Job State Change"


def _observe_training(event: TrainingJobStateChange) -> AttemptDetail | None:
    if (identity := run_attempt_from_tags(event.detail.Tags)) is None:
        return None
    detail = {
        "training_job_arn": bounded(event.detail.TrainingJobArn),
        "training_status": event.detail.TrainingJobStatus,
        "secondary_status": bounded(event.detail.SecondaryStatus),
        "failure_reason": bounded(event.detail.FailureReason),
        "event_time": iso_z(event.time),
        "rank": SAGEMAKER_RANK[event.detail.TrainingJobStatus],
        "tiebreak": tiebreak(event),
    }
    return AttemptDetail(*identity, name="training", detail=detail)


def _attempt_request(training: dict[str, Any], run_id: str, attempt: int) -> dict[str, Any]:
    """One attempt's CreateTrainingJob request: the run's, with the attempt's name, JOBLINE_ATTEMPT
    and jobline:attempt tag. A dict serialised by json.dumps: no value can change its structure."""
    return {
        **training,
        "TrainingJobName": attempt_name(run_id, attempt),
        "Environment": {**training["Environment"], ATTEMPT_VARIABLE: str(attempt)},
        "Tags": [*training["Tags"], {"Key": ATTEMPT_TAG, "Value": str(attempt)}],
    }


def _list_by_name(batch: Any, queue: str, name: str) -> str | None:
    """A service job by its name (JOB_NAME matches without case: compare exactly)."""
    found = batch.list_service_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [name]}])
    return next((job["jobId"] for job in found["jobSummaryList"] if job["jobName"] == name), None)


def _find_job(row: dict[str, Any], attempt: int, deps: Deps) -> str | None:
    """The attempt's service job by its name, in the queue of the row's job."""
    job = next((j for j in deps.catalog.jobs if j.name == row["job"]), None)  # gone from the catalog since?
    queue = (job and getattr(job.backend, "job_queue", None)) or deps.settings.service_job_queue_arn
    return _list_by_name(deps.client("batch"), queue, attempt_name(row["run_id"], attempt))


def _payload(training: dict[str, Any]) -> str:
    return json.dumps(training, separators=(",", ":"))


class BatchService:
    type = TYPE
    model = BatchServiceBackend
    events = {DETAIL_TYPE: ServiceJobStateChange, TRAINING_DETAIL_TYPE: TrainingJobStateChange}
    inline_event_limit = 256  # SageMaker caps each environment value at 256 characters
    job_name_limit = SAGEMAKER_NAME_LIMIT  # the training job is named "<run id>-<attempt>"
    job_console_path = None

    submit_api = "SubmitServiceJob"

    def submit_request(self, backend: BatchServiceBackend, run: RunSpec, settings: Settings) -> dict[str, Any]:
        """SubmitServiceJob's request in boto3's shape, its payload (`training`) as a JSON object the
        submitter completes per attempt and serialises (https://docs.aws.amazon.com/batch/latest/APIReference/API_SubmitServiceJob.html)."""
        training = {
            "StoppingCondition": {"MaxRuntimeInSeconds": run.timeout_seconds},
            "RoleArn": settings.sagemaker_role_arn,
            **backend.training,
            "Environment": {**backend.training.get("Environment", {}), **run.environment},
            "Tags": [*backend.training.get("Tags", []), {"Key": RUN_ID_TAG, "Value": run.run_id}],
        }
        environment = training["Environment"]
        if len(environment) + 1 > TRAINING_ENVIRONMENT_ENTRIES:  # + JOBLINE_ATTEMPT
            raise InvalidArguments(
                f"job {run.job_name!r}: {len(environment) + 1} training environment variables,"
                f" over SageMaker's {TRAINING_ENVIRONMENT_ENTRIES}"
            )
        if too_long := sorted(k for k, v in environment.items() if len(v) > TRAINING_ENVIRONMENT_VALUE_LIMIT):
            raise InvalidArguments(
                f"job {run.job_name!r}: SageMaker training environment values are at most"
                f" {TRAINING_ENVIRONMENT_VALUE_LIMIT} characters: {too_long}"
            )
        # The last attempt's is the longest (the most digits).
        longest = len(_payload(_attempt_request(training, run.run_id, run.max_attempts)).encode())
        if longest > SERVICE_PAYLOAD_LIMIT_BYTES:
            raise InvalidArguments(
                f"job {run.job_name!r}: the training request with this run's environment is {longest} bytes,"
                f" over the {SERVICE_PAYLOAD_LIMIT_BYTES}-byte serviceRequestPayload limit"
            )
        request: dict[str, Any] = {
            "jobQueue": require_queue(backend.job_queue or settings.service_job_queue_arn, run.job_name, "service"),
            "serviceJobType": "SAGEMAKER_TRAINING",
            "training": training,
            "retryStrategy": {"attempts": 1},
            "timeoutConfig": {"attemptDurationSeconds": run.timeout_seconds},
            "tags": {RUN_ID_TAG: run.run_id, JOB_TAG: run.job_name},
        }
        if backend.scheduling_priority is not None:
            request["schedulingPriority"] = backend.scheduling_priority
        if backend.share_identifier is not None:
            request["shareIdentifier"] = backend.share_identifier
        return request

    def submit(self, request: dict[str, Any], run_id: str, attempt: int, clients: Clients) -> str:
        """The attempt's name is its clientToken: Batch takes a repeat of the same request as the
        same request and rejects it (ClientException), so a repeat means the first was accepted
        with its response lost, and the job is found by its name."""
        name = attempt_name(run_id, attempt)
        params = {k: v for k, v in request.items() if k != "training"}
        params.update(
            jobName=name,
            clientToken=name,
            serviceRequestPayload=_payload(_attempt_request(request["training"], run_id, attempt)),
            tags={**request["tags"], ATTEMPT_TAG: str(attempt)},
        )
        batch = clients("batch")
        try:
            response = batch.submit_service_job(**params)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ClientException":
                raise
            if found := _list_by_name(batch, request["jobQueue"], name):
                return found
            raise
        return str(response["jobId"])

    def find_submitted(self, request: dict[str, Any], run_id: str, attempt: int, clients: Clients) -> str | None:
        return _list_by_name(clients("batch"), request["jobQueue"], attempt_name(run_id, attempt))

    def observe(self, event: Any, glue: Any) -> Observation | AttemptDetail | None:
        if isinstance(event, TrainingJobStateChange):
            return _observe_training(event)
        detail = event.detail
        if (identity := run_attempt_from_name(detail.jobName)) is None:
            return None
        last = detail.attempts[-1] if detail.attempts else detail.latestAttempt
        resource = (last.serviceResourceId if last else None) or (
            detail.latestAttempt.serviceResourceId if detail.latestAttempt else None
        )
        seen = observed(
            event,
            identity[1],
            detail.status,
            map_service_status(detail.status, detail.statusReason),
            SERVICE_RANK[detail.status],
            backend_job_id=detail.jobId,
            started_at=from_epoch_ms(detail.startedAt or (last.startedAt if last else None)),
            stopped_at=from_epoch_ms(detail.stoppedAt or (last.stoppedAt if last else None)),
            status_reason=detail.statusReason,
            training_job_arn=resource.value if resource else None,
        )
        return Observation(*identity, seen)

    def describe(self, row: dict[str, Any], attempt: int, record: dict[str, Any], deps: Deps) -> Any | None:
        if not (job_id := record.get("backend_job_id")):
            return None
        job = deps.client("batch").describe_service_job(jobId=job_id)
        return as_event(ServiceJobStateChange, "aws.batch", DETAIL_TYPE, job, now_iso())

    def stop(self, row: dict[str, Any], attempt: int, record: dict[str, Any], reason: str, deps: Deps) -> str | None:
        # Stopping the execution leaves the service job running. Before the submitter recorded
        # the attempt's job id, the job is found by its name.
        job_id = record.get("backend_job_id") or _find_job(row, attempt, deps)
        if not job_id:
            return None
        deps.client("batch").terminate_service_job(jobId=job_id, reason=reason)
        return str(job_id)


BACKEND = BatchService()
