"""SageMaker processing jobs, one per attempt, created by the submitter (jobline.submit) and named
`<run id>-<attempt>`: names are unique in an account and Region, so a create whose response was
lost is found by its name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError
from pydantic import Field, field_validator

from jobline.backends.base import (
    ATTEMPT_TAG,
    ATTEMPT_VARIABLE,
    RUN_ID_TAG,
    SAGEMAKER_NAME_LIMIT,
    STACK_ROLE_ONLY,
    Clients,
    EpochMsNumber,
    EventDetail,
    Observation,
    RunSpec,
    StateChangeEvent,
    as_event,
    attempt_name,
    max_runtime_exceeded,
    observed,
    run_attempt_from_name,
)
from jobline.catalog_base import CatalogModel
from jobline.clock import epoch_ms, from_epoch_ms, now_iso
from jobline.errors import InvalidArguments
from jobline.status import Reason, RunStatus

if TYPE_CHECKING:
    from jobline.deps import Deps
    from jobline.settings import Settings

TYPE = "sagemaker_processing"
INSTANCE_TYPE = r"^ml\.[a-z0-9]+[a-z0-9-]*\.[a-z0-9]+$"
# SageMaker caps each environment value at 256 characters.
ENVIRONMENT_VALUE_LIMIT = 256


class ProcessingChannel(CatalogModel):
    name: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$")
    s3_uri: str = Field(pattern=r"^s3://")
    local_path: str = Field(pattern=r"^/opt/ml/processing/")


class SageMakerProcessingBackend(CatalogModel):
    type: Literal["sagemaker_processing"]
    image_uri: str = Field(min_length=1)
    entrypoint: list[str] | None = None
    arguments: list[str] = Field(default_factory=list)
    inputs: list[ProcessingChannel] = Field(default_factory=list)
    outputs: list[ProcessingChannel] = Field(default_factory=list)
    instance_type: str = Field(default="ml.m5.large", pattern=INSTANCE_TYPE)
    instance_count: int = Field(default=1, ge=1, le=100)
    volume_size_gb: int = Field(default=30, ge=1, le=16384)
    network_isolation: bool = False
    role_arn: str | None = Field(default=None, description="Refused: jobline passes only the stack's role")

    @field_validator("role_arn")
    @classmethod
    def _passable_role(cls, role_arn: str | None) -> str | None:
        if role_arn is not None:
            raise ValueError(STACK_ROLE_ONLY.format(field="role_arn"))
        return role_arn


# SageMaker processing job statuses: every ProcessingJobStatus of the SageMaker API (checked against
# botocore's model in tests/unit/backends/test_status_vocabularies.py).
SAGEMAKER_RANK = {"InProgress": 0, "Stopping": 1, "Completed": 2, "Failed": 2, "Stopped": 2}
SAGEMAKER_STATUS = {
    "InProgress": (RunStatus.RUNNING, Reason.RUNNING),
    "Stopping": (RunStatus.RUNNING, Reason.STOPPING),
    "Completed": (RunStatus.SUCCEEDED, Reason.COMPLETED),
    "Failed": (RunStatus.FAILED, Reason.JOB_FAILED),
    "Stopped": (RunStatus.STOPPED, Reason.STOPPED_BY_USER),
}


def map_sagemaker_status(status: str, failure_reason: str | None) -> tuple[RunStatus, Reason]:
    """A job that its StoppingCondition stopped says MaxRuntimeExceeded in its reason (FailureReason,
    else ExitMessage); any other Stopped job was stopped by a StopProcessingJob call."""
    if status in ("Failed", "Stopped") and max_runtime_exceeded(failure_reason):
        return RunStatus.TIMEOUT, Reason.TIMEOUT
    return SAGEMAKER_STATUS[status]


class ProcessingJobDetail(EventDetail):
    ProcessingJobName: str
    ProcessingJobArn: str | None = None
    ProcessingJobStatus: Literal["InProgress", "Completed", "Failed", "Stopping", "Stopped"]
    FailureReason: str | None = None
    ExitMessage: str | None = None
    ProcessingStartTime: EpochMsNumber | str | None = None
    ProcessingEndTime: EpochMsNumber | str | None = None


class ProcessingJobStateChange(StateChangeEvent):
    detail: ProcessingJobDetail  # type: ignore[assignment]


DETAIL_TYPE = "SageMaker Processing Job State Change"


def _channel_input(channel: ProcessingChannel) -> dict[str, Any]:
    return {
        "InputName": channel.name,
        "S3Input": {
            "S3Uri": channel.s3_uri,
            "LocalPath": channel.local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
        },
    }


def _channel_output(channel: ProcessingChannel) -> dict[str, Any]:
    return {
        "OutputName": channel.name,
        "S3Output": {"S3Uri": channel.s3_uri, "LocalPath": channel.local_path, "S3UploadMode": "EndOfJob"},
    }


def _described(sagemaker: Any, run_id: str, attempt: int) -> str | None:
    """The attempt's processing job's ARN, or None when there is none (SageMaker answers an unknown
    name with ValidationException)."""
    try:
        job = sagemaker.describe_processing_job(ProcessingJobName=attempt_name(run_id, attempt))
    except ClientError as error:
        if error.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
            return None
        raise
    return str(job["ProcessingJobArn"])


class SageMakerProcessing:
    type = TYPE
    model = SageMakerProcessingBackend
    events = {DETAIL_TYPE: ProcessingJobStateChange}
    inline_event_limit = ENVIRONMENT_VALUE_LIMIT
    job_name_limit = SAGEMAKER_NAME_LIMIT
    job_console_path = None

    submit_api = "CreateProcessingJob"

    def submit_request(self, backend: SageMakerProcessingBackend, run: RunSpec, settings: Settings) -> dict[str, Any]:
        """CreateProcessingJob's request (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateProcessingJob.html),
        each attempt's name, JOBLINE_ATTEMPT and jobline:attempt tag aside."""
        environment = run.environment
        if too_long := sorted(k for k, v in environment.items() if len(v) > ENVIRONMENT_VALUE_LIMIT):
            raise InvalidArguments(
                f"job {run.job_name!r}: SageMaker environment values are at most 256 characters: {too_long}"
            )
        app: dict[str, Any] = {"ImageUri": backend.image_uri}
        if backend.entrypoint:
            app["ContainerEntrypoint"] = backend.entrypoint
        if backend.arguments:
            app["ContainerArguments"] = backend.arguments
        return {
            "AppSpecification": app,
            "Environment": environment,
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": backend.instance_count,
                    "InstanceType": backend.instance_type,
                    "VolumeSizeInGB": backend.volume_size_gb,
                }
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": run.timeout_seconds},
            "RoleArn": settings.sagemaker_role_arn,
            "NetworkConfig": {"EnableNetworkIsolation": backend.network_isolation},
            "ProcessingInputs": [_channel_input(c) for c in backend.inputs],
            "ProcessingOutputConfig": {"Outputs": [_channel_output(c) for c in backend.outputs]},
            "Tags": [{"Key": RUN_ID_TAG, "Value": run.run_id}],
        }

    def submit(self, request: dict[str, Any], run_id: str, attempt: int, clients: Clients) -> str:
        """A name already taken (ResourceInUse) is this attempt's job: its create was accepted before."""
        sagemaker = clients("sagemaker")
        try:
            response = sagemaker.create_processing_job(
                **{
                    **request,
                    "ProcessingJobName": attempt_name(run_id, attempt),
                    "Environment": {**request["Environment"], ATTEMPT_VARIABLE: str(attempt)},
                    "Tags": [*request["Tags"], {"Key": ATTEMPT_TAG, "Value": str(attempt)}],
                }
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceInUse" and (found := _described(sagemaker, run_id, attempt)):
                return found
            raise
        return str(response["ProcessingJobArn"])

    def find_submitted(self, request: dict[str, Any], run_id: str, attempt: int, clients: Clients) -> str | None:
        return _described(clients("sagemaker"), run_id, attempt)

    def observe(self, event: ProcessingJobStateChange, glue: Any) -> Observation | None:
        detail = event.detail
        if (identity := run_attempt_from_name(detail.ProcessingJobName)) is None:
            return None
        reason = detail.FailureReason or detail.ExitMessage
        seen = observed(
            event,
            identity[1],
            detail.ProcessingJobStatus,
            map_sagemaker_status(detail.ProcessingJobStatus, reason),
            SAGEMAKER_RANK[detail.ProcessingJobStatus],
            backend_job_id=detail.ProcessingJobArn or detail.ProcessingJobName,
            started_at=from_epoch_ms(detail.ProcessingStartTime),
            stopped_at=from_epoch_ms(detail.ProcessingEndTime),
            status_reason=reason,
        )
        return Observation(*identity, seen)

    def describe(self, row: dict[str, Any], attempt: int, record: dict[str, Any], deps: Deps) -> Any | None:
        try:
            job = deps.client("sagemaker").describe_processing_job(ProcessingJobName=f"{row['run_id']}-{attempt}")
        except ClientError as error:
            if error.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
                return None  # not created yet
            raise
        job = {k: epoch_ms(v) for k, v in job.items()}
        return as_event(ProcessingJobStateChange, "aws.sagemaker", DETAIL_TYPE, job, now_iso())

    def stop(self, row: dict[str, Any], attempt: int, record: dict[str, Any], reason: str, deps: Deps) -> str | None:
        """Stopping the execution leaves the attempt's job running (it was not started with .sync)."""
        name = attempt_name(row["run_id"], attempt)
        try:
            deps.client("sagemaker").stop_processing_job(ProcessingJobName=name)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
                return None  # not created yet, or no longer in progress
            raise
        return str(record.get("backend_job_id") or name)


BACKEND = SageMakerProcessing()
