"""Backend job state change events, turned into observations of a run's attempt and applied.

Every backend names its jobs after the run (`<run id>-<attempt>`), except Glue, whose run ids
are Glue's own: a Glue event is traced to its run through the job run's arguments.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from jobline.dal import RunTable
from jobline.runs import now_iso
from jobline.status import (
    BATCH_RANK,
    GLUE_RANK,
    SAGEMAKER_RANK,
    SERVICE_RANK,
    TERMINAL,
    RunStatus,
    apply_observation,
    apply_training_detail,
    map_batch_status,
    map_glue_state,
    map_sagemaker_status,
    map_service_status,
)

RUN_ID_TAG = "jobline:run-id"
ATTEMPT_TAG = "jobline:attempt"
GLUE_RUN_ID_ARGUMENT = "--jobline_run_id"
GLUE_ATTEMPT_ARGUMENT = "--jobline_attempt"
_BACKEND_NAME = re.compile(r"^(?P<run_id>[a-z][a-z0-9-]*-[0-9a-f]{20})-(?P<attempt>\d+)$")
Observation = tuple[str, int, dict[str, Any]]


class _Detail(BaseModel):
    model_config = ConfigDict(extra="ignore")


class BatchContainer(_Detail):
    exitCode: int | None = None
    logStreamName: str | None = None


class BatchAttempt(_Detail):
    container: BatchContainer | None = None
    startedAt: int | None = None
    stoppedAt: int | None = None
    statusReason: str | None = None


class BatchJobDetail(_Detail):
    jobName: str
    jobId: str
    jobQueue: str
    status: Literal["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"]
    statusReason: str | None = None
    attempts: list[BatchAttempt] = Field(default_factory=list)
    startedAt: int | None = None
    stoppedAt: int | None = None
    container: BatchContainer | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class ServiceResourceId(_Detail):
    name: str
    value: str


class ServiceAttempt(_Detail):
    serviceResourceId: ServiceResourceId | None = None
    startedAt: int | None = None
    stoppedAt: int | None = None
    statusReason: str | None = None


class ServiceJobDetail(_Detail):
    jobName: str
    jobId: str
    jobQueue: str
    serviceJobType: str | None = None
    status: Literal["SUBMITTED", "PENDING", "RUNNABLE", "SCHEDULED", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"]
    statusReason: str | None = None
    attempts: list[ServiceAttempt] = Field(default_factory=list)
    startedAt: int | None = None
    stoppedAt: int | None = None


class ProcessingJobDetail(_Detail):
    ProcessingJobName: str
    ProcessingJobArn: str | None = None
    ProcessingJobStatus: Literal["InProgress", "Completed", "Failed", "Stopping", "Stopped"]
    FailureReason: str | None = None
    ExitMessage: str | None = None
    ProcessingStartTime: int | float | str | None = None
    ProcessingEndTime: int | float | str | None = None


class TrainingJobDetail(_Detail):
    TrainingJobName: str
    TrainingJobArn: str | None = None
    TrainingJobStatus: Literal["InProgress", "Completed", "Failed", "Stopping", "Stopped"]
    SecondaryStatus: str | None = None
    FailureReason: str | None = None
    Tags: dict[str, str] = Field(default_factory=dict)


class GlueJobDetail(_Detail):
    jobName: str
    jobRunId: str
    state: Literal["WAITING", "STARTING", "RUNNING", "STOPPING", "SUCCEEDED", "FAILED", "ERROR", "TIMEOUT", "STOPPED"]
    message: str | None = None


class BatchJobStateChange(EventBridgeModel):
    detail: BatchJobDetail  # type: ignore[assignment]


class ServiceJobStateChange(EventBridgeModel):
    detail: ServiceJobDetail  # type: ignore[assignment]


class ProcessingJobStateChange(EventBridgeModel):
    detail: ProcessingJobDetail  # type: ignore[assignment]


class TrainingJobStateChange(EventBridgeModel):
    detail: TrainingJobDetail  # type: ignore[assignment]


class GlueJobStateChange(EventBridgeModel):
    detail: GlueJobDetail  # type: ignore[assignment]


MODELS: dict[str, type[EventBridgeModel]] = {
    "Batch Job State Change": BatchJobStateChange,
    "Batch Service Job State Change": ServiceJobStateChange,
    "SageMaker Processing Job State Change": ProcessingJobStateChange,
    "SageMaker Training Job State Change": TrainingJobStateChange,
    "Glue Job State Change": GlueJobStateChange,
    "Glue Job Run Status": GlueJobStateChange,
}


def model_for(event: dict[str, Any]) -> type[EventBridgeModel]:
    """The model for an event's detail-type (a KeyError names an event jobline does not consume)."""
    return MODELS[event.get("detail-type", "")]


def iso(value: int | float | str | None) -> str | None:
    """Epoch milliseconds (or an ISO string) as ISO 8601 with milliseconds, UTC."""
    if value is None or isinstance(value, str):
        return value
    return datetime.fromtimestamp(value / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event_time(event: EventBridgeModel) -> str:
    return event.time.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_attempt_from_name(name: str) -> tuple[str, int] | None:
    if match := _BACKEND_NAME.match(name):
        return match["run_id"], int(match["attempt"])
    return None


def _observation(
    event: EventBridgeModel, attempt: int, backend_status: str, mapped: tuple[RunStatus, Any], rank: int, **details: Any
) -> dict[str, Any]:
    return {
        "attempt": attempt,
        "backend_status": backend_status,
        "status": mapped[0].value,
        "reason": mapped[1].value,
        "rank": rank,
        "event_time": _event_time(event),
        **details,
    }


def observe_batch(event: BatchJobStateChange, attempt: int) -> dict[str, Any]:
    detail = event.detail
    last = detail.attempts[-1] if detail.attempts else None
    container = detail.container or (last.container if last else None) or BatchContainer()
    return _observation(
        event,
        attempt,
        detail.status,
        map_batch_status(detail.status, detail.statusReason, container.exitCode),
        BATCH_RANK[detail.status],
        backend_job_id=detail.jobId,
        started_at=iso(detail.startedAt or (last.startedAt if last else None)),
        stopped_at=iso(detail.stoppedAt or (last.stoppedAt if last else None)),
        exit_code=container.exitCode,
        log_stream=container.logStreamName,
        status_reason=detail.statusReason,
    )


def _batch(event: BatchJobStateChange, _: Any) -> Observation | None:
    tags = event.detail.tags
    if RUN_ID_TAG in tags and tags.get(ATTEMPT_TAG, "").isdigit():
        identity: tuple[str, int] | None = (tags[RUN_ID_TAG], int(tags[ATTEMPT_TAG]))
    else:
        identity = run_attempt_from_name(event.detail.jobName)
    return identity and (*identity, observe_batch(event, identity[1]))


def _service(event: ServiceJobStateChange, _: Any) -> Observation | None:
    detail = event.detail
    if (identity := run_attempt_from_name(detail.jobName)) is None:
        return None
    last = detail.attempts[-1] if detail.attempts else None
    resource = last.serviceResourceId if last else None
    observed = _observation(
        event,
        identity[1],
        detail.status,
        map_service_status(detail.status, detail.statusReason),
        SERVICE_RANK[detail.status],
        backend_job_id=detail.jobId,
        started_at=iso(detail.startedAt or (last.startedAt if last else None)),
        stopped_at=iso(detail.stoppedAt or (last.stoppedAt if last else None)),
        status_reason=detail.statusReason,
        training_job_arn=resource.value if resource else None,
    )
    return (*identity, observed)


def _processing(event: ProcessingJobStateChange, _: Any) -> Observation | None:
    detail = event.detail
    if (identity := run_attempt_from_name(detail.ProcessingJobName)) is None:
        return None
    reason = detail.FailureReason or detail.ExitMessage
    observed = _observation(
        event,
        identity[1],
        detail.ProcessingJobStatus,
        map_sagemaker_status(detail.ProcessingJobStatus, reason),
        SAGEMAKER_RANK[detail.ProcessingJobStatus],
        backend_job_id=detail.ProcessingJobArn or detail.ProcessingJobName,
        started_at=iso(detail.ProcessingStartTime),
        stopped_at=iso(detail.ProcessingEndTime),
        status_reason=reason,
    )
    return (*identity, observed)


def _glue(event: GlueJobStateChange, glue: Any) -> Observation | None:
    detail = event.detail
    try:
        run = glue.get_job_run(JobName=detail.jobName, RunId=detail.jobRunId)["JobRun"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "EntityNotFoundException":
            return None
        raise
    arguments = run.get("Arguments", {})
    if GLUE_RUN_ID_ARGUMENT not in arguments or not arguments.get(GLUE_ATTEMPT_ARGUMENT, "").isdigit():
        return None
    attempt = int(arguments[GLUE_ATTEMPT_ARGUMENT])
    observed = _observation(
        event,
        attempt,
        detail.state,
        map_glue_state(detail.state),
        GLUE_RANK[detail.state],
        backend_job_id=detail.jobRunId,
        started_at=iso(_epoch_ms(run.get("StartedOn"))),
        stopped_at=iso(_epoch_ms(run.get("CompletedOn"))),
        status_reason=run.get("ErrorMessage") or detail.message,
    )
    return arguments[GLUE_RUN_ID_ARGUMENT], attempt, observed


def _epoch_ms(value: Any) -> int | None:
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else value


OBSERVERS = {
    BatchJobStateChange: _batch,
    ServiceJobStateChange: _service,
    ProcessingJobStateChange: _processing,
    GlueJobStateChange: _glue,
}


def apply_state_change(event: EventBridgeModel, table: RunTable, glue: Any, sfn: Any) -> str:
    """Move the run's row forward; returns what happened, for the log."""
    if isinstance(event, TrainingJobStateChange):
        return _apply_training(event, table)
    observation = OBSERVERS[type(event)](event, glue)
    if observation is None:
        return "ignored: not a jobline job"
    run_id, attempt, observed = observation
    result = table.update_run(run_id, _changed_at(lambda row: apply_observation(row, observed)))
    if result is None:
        return "ignored: no such run"
    before, after = result
    resumed = _resume_waiting_execution(after, attempt, sfn)
    if before == after and not resumed:
        return "unchanged: duplicate or stale event"
    return f"applied: {before['status']} -> {after['status']}" + (" (execution resumed)" if resumed else "")


def _apply_training(event: TrainingJobStateChange, table: RunTable) -> str:
    """Training job events add detail to the service job attempt that runs them; the service
    job's own events drive the status."""
    tags = event.detail.Tags
    if RUN_ID_TAG not in tags or not tags.get(ATTEMPT_TAG, "").isdigit():
        return "ignored: not a jobline job"
    detail = {
        "training_job_arn": event.detail.TrainingJobArn,
        "training_status": event.detail.TrainingJobStatus,
        "secondary_status": event.detail.SecondaryStatus,
        "failure_reason": event.detail.FailureReason,
        "event_time": _event_time(event),
    }
    result = table.update_run(
        tags[RUN_ID_TAG], _changed_at(lambda row: apply_training_detail(row, int(tags[ATTEMPT_TAG]), detail))
    )
    if result is None:
        return "ignored: no such run"
    return "unchanged: duplicate or stale event" if result[0] == result[1] else "applied: training detail"


def _changed_at(change: Any) -> Any:
    def apply(row: dict[str, Any]) -> dict[str, Any]:
        new = change(row)
        if new != row:
            new["updated_at"] = now_iso()
        return new

    return apply


def _resume_waiting_execution(row: dict[str, Any], attempt: int, sfn: Any) -> bool:
    """Batch service jobs have no .sync integration: the execution waits on a task token stored in
    the row, and the attempt's terminal event hands the outcome back. If the event came first, the
    state machine's conditional write of the token fails and it asks DescribeServiceJob itself."""
    token = row.get("task_token")
    record = (row.get("attempts") or {}).get(str(attempt)) or {}
    if not token or row.get("task_token_attempt") != attempt or record.get("status") not in TERMINAL:
        return False
    outcome = json.dumps({"status": record["status"], "reason": record["reason"]})
    try:
        sfn.send_task_success(taskToken=token, output=outcome)
    except ClientError as error:
        # Already resumed (a duplicate event) or the execution moved on: nothing waits any more.
        if error.response["Error"]["Code"] in ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist"):
            return False
        raise
    return True
