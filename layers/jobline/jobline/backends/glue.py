"""Glue job runs, started with `.sync`. Glue's run ids are its own: a Glue event is traced to its
run through the job run's `--jobline_run_id` and `--jobline_attempt` arguments."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError
from pydantic import Field, field_validator

from jobline.backends.base import EventDetail, Observation, RunSpec, StateChangeEvent, as_event, observed, run_attempt
from jobline.catalog_base import SECRET_NAME, CatalogModel
from jobline.clock import epoch_ms, from_epoch_ms, now_iso
from jobline.errors import RejectedInput
from jobline.status import Reason, RunStatus

if TYPE_CHECKING:
    from jobline.deps import Deps
    from jobline.settings import Settings

TYPE = "glue"
GLUE_WORKER_TYPES = ("Standard", "G.025X", "G.1X", "G.2X", "G.4X", "G.8X", "Z.2X")
GLUE_RUN_ID_ARGUMENT = "--jobline_run_id"
GLUE_ATTEMPT_ARGUMENT = "--jobline_attempt"


class GlueBackend(CatalogModel):
    type: Literal["glue"]
    job_name: str | None = Field(default=None, description="Glue job; default: the stack's example job")
    arguments: dict[str, str] = Field(default_factory=dict, description="Glue job arguments, keys like --name")
    worker_type: Literal[GLUE_WORKER_TYPES] = "G.1X"  # type: ignore[valid-type]
    number_of_workers: int = Field(default=2, ge=1, le=299)
    execution_class: Literal["STANDARD", "FLEX"] = "STANDARD"

    @field_validator("arguments")
    @classmethod
    def _arguments(cls, arguments: dict[str, str]) -> dict[str, str]:
        for key in arguments:
            if not re.match(r"^--[A-Za-z0-9_.-]+$", key):
                raise ValueError(f"Glue argument {key!r} must look like --name")
            if SECRET_NAME.search(key):
                raise ValueError(f"Glue argument {key!r} looks like a secret: Glue logs job arguments")
        return arguments


# Glue job runs (JobRunState, and the `state` of Glue's events).
GLUE_RANK = {
    "WAITING": 0,
    "STARTING": 1,
    "RUNNING": 2,
    "STOPPING": 3,
    "SUCCEEDED": 4,
    "FAILED": 4,
    "ERROR": 4,
    "TIMEOUT": 4,
    "STOPPED": 4,
}
GLUE_STATUS = {
    "WAITING": (RunStatus.STARTING, Reason.IN_QUEUE),
    "STARTING": (RunStatus.STARTING, Reason.STARTING),
    "RUNNING": (RunStatus.RUNNING, Reason.RUNNING),
    "STOPPING": (RunStatus.RUNNING, Reason.STOPPING),
    "SUCCEEDED": (RunStatus.SUCCEEDED, Reason.COMPLETED),
    "FAILED": (RunStatus.FAILED, Reason.JOB_FAILED),
    "ERROR": (RunStatus.FAILED, Reason.JOB_FAILED),
    "TIMEOUT": (RunStatus.TIMEOUT, Reason.TIMEOUT),
    "STOPPED": (RunStatus.STOPPED, Reason.STOPPED_BY_USER),
}


def map_glue_state(state: str) -> tuple[RunStatus, Reason]:
    return GLUE_STATUS[state]


class GlueJobDetail(EventDetail):
    # Glue's limits (GetJobRun: JobName and RunId are 1-255 characters): longer is not a Glue run.
    jobName: str = Field(min_length=1, max_length=255)
    jobRunId: str = Field(min_length=1, max_length=255)
    state: Literal["WAITING", "STARTING", "RUNNING", "STOPPING", "SUCCEEDED", "FAILED", "ERROR", "TIMEOUT", "STOPPED"]
    message: str | None = None


class GlueJobStateChange(StateChangeEvent):
    detail: GlueJobDetail  # type: ignore[assignment]


DETAIL_TYPE = "Glue Job State Change"
# Glue's "Job Run Status" events (NotificationProperty.NotifyDelayAfter) carry the same detail.
RUN_STATUS_DETAIL_TYPE = "Glue Job Run Status"


class Glue:
    type = TYPE
    model = GlueBackend
    events = {DETAIL_TYPE: GlueJobStateChange, RUN_STATUS_DETAIL_TYPE: GlueJobStateChange}
    inline_event_limit = 4096  # Glue arguments are kept small to stay readable in its console
    job_name_limit = None
    job_console_path = None

    def execution_input(self, backend: GlueBackend, run: RunSpec, settings: Settings) -> dict[str, Any]:
        job_name = backend.job_name or settings.glue_job_name
        if not job_name:
            raise RejectedInput(f"job {run.job_name!r} names no Glue job and the stack has no default one")
        return {
            "glue": {
                "JobName": job_name,
                # Glue passes job parameters as --name arguments; the job reads them with getResolvedOptions.
                "Arguments": {**backend.arguments, **{f"--{k.lower()}": v for k, v in run.environment.items()}},
                "WorkerType": backend.worker_type,
                "NumberOfWorkers": backend.number_of_workers,
                "Timeout": -(-run.timeout_seconds // 60),
                "ExecutionClass": backend.execution_class,
            }
        }

    def observe(self, event: GlueJobStateChange, glue: Any) -> Observation | None:
        detail = event.detail
        try:
            run = glue.get_job_run(JobName=detail.jobName, RunId=detail.jobRunId)["JobRun"]
        except ClientError as error:
            if error.response["Error"]["Code"] == "EntityNotFoundException":
                return None
            raise
        arguments = run.get("Arguments", {})
        if (identity := run_attempt(arguments.get(GLUE_RUN_ID_ARGUMENT), arguments.get(GLUE_ATTEMPT_ARGUMENT))) is None:
            return None
        run_id, attempt = identity
        seen = observed(
            event,
            attempt,
            detail.state,
            map_glue_state(detail.state),
            GLUE_RANK[detail.state],
            backend_job_id=detail.jobRunId,
            started_at=from_epoch_ms(epoch_ms(run.get("StartedOn"))),
            stopped_at=from_epoch_ms(epoch_ms(run.get("CompletedOn"))),
            status_reason=run.get("ErrorMessage") or detail.message,
        )
        return Observation(run_id, attempt, seen)

    def describe(self, row: dict[str, Any], attempt: int, record: dict[str, Any], deps: Deps) -> Any | None:
        glue_job = deps.catalog.get(row["job"]).backend.job_name or deps.settings.glue_job_name
        for run in deps.client("glue").get_job_runs(JobName=glue_job, MaxResults=200)["JobRuns"]:
            arguments = run.get("Arguments", {})
            if arguments.get(GLUE_RUN_ID_ARGUMENT) == row["run_id"] and arguments.get(GLUE_ATTEMPT_ARGUMENT) == str(
                attempt
            ):
                detail = {"jobName": glue_job, "jobRunId": run["Id"], "state": run["JobRunState"]}
                return as_event(GlueJobStateChange, "aws.glue", DETAIL_TYPE, detail, now_iso())
        return None

    def stop(self, row: dict[str, Any], attempt: int, record: dict[str, Any], reason: str, deps: Deps) -> str | None:
        return None  # Step Functions stops a .sync Glue job run with its execution


BACKEND = Glue()
