"""Glue job runs, started by the submitter (jobline.submit). Glue's run ids are its own: a Glue event,
and a start whose response was lost, are traced to their run through the job run's
`--jobline_run_id` and `--jobline_attempt` arguments."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError
from pydantic import Field, field_validator, model_validator

from jobline.backends.base import (
    Clients,
    EventDetail,
    Observation,
    RunSpec,
    StateChangeEvent,
    as_event,
    observed,
    run_attempt,
)
from jobline.catalog_base import SECRET_NAME, CatalogModel
from jobline.clock import epoch_ms, from_epoch_ms, now_iso
from jobline.errors import RejectedInput
from jobline.status import Reason, RunStatus

if TYPE_CHECKING:
    from jobline.deps import Deps
    from jobline.settings import Settings

TYPE = "glue"
GLUE_WORKER_TYPES = ("Standard", "G.025X", "G.1X", "G.2X", "G.4X", "G.8X", "Z.2X")
# StartJobRun's MaxCapacity for a Python shell job (JobCommand.Name "pythonshell"): 0.0625 or 1 DPU.
# Spark jobs of Glue 2.0 and later cannot set it (they take WorkerType and NumberOfWorkers), and the
# two are exclusive. https://docs.aws.amazon.com/glue/latest/webapi/API_StartJobRun.html
PYTHON_SHELL_DPUS = (0.0625, 1.0)
_SPARK_CAPACITY = ("worker_type", "number_of_workers", "execution_class")
GLUE_RUN_ID_ARGUMENT = "--jobline_run_id"
GLUE_ATTEMPT_ARGUMENT = "--jobline_attempt"


class GlueBackend(CatalogModel):
    type: Literal["glue"]
    job_name: str | None = Field(default=None, description="Glue job; default: the stack's example job")
    arguments: dict[str, str] = Field(default_factory=dict, description="Glue job arguments, keys like --name")
    worker_type: Literal[GLUE_WORKER_TYPES] = "G.1X"  # type: ignore[valid-type]
    number_of_workers: int = Field(default=2, ge=1, le=299)
    execution_class: Literal["STANDARD", "FLEX"] = "STANDARD"
    max_capacity: Literal[PYTHON_SHELL_DPUS] | None = Field(  # type: ignore[valid-type]
        default=None, description="DPUs of a Python shell job (0.0625 or 1); instead of the Spark settings above"
    )

    @model_validator(mode="after")
    def _one_kind_of_capacity(self) -> GlueBackend:
        if self.max_capacity is not None and (spark := [f for f in _SPARK_CAPACITY if f in self.model_fields_set]):
            raise ValueError(
                f"max_capacity (a Python shell job's DPUs) and {', '.join(spark)} (a Spark job's workers)"
                " are exclusive in StartJobRun: declare one kind of capacity"
            )
        return self

    @field_validator("arguments")
    @classmethod
    def _arguments(cls, arguments: dict[str, str]) -> dict[str, str]:
        for key in arguments:
            if not re.match(r"^--[A-Za-z0-9_.-]+$", key):
                raise ValueError(f"Glue argument {key!r} must look like --name")
            if SECRET_NAME.search(key):
                raise ValueError(f"Glue argument {key!r} looks like a secret: Glue logs job arguments")
        return arguments


# Glue job runs: every JobRunState of the Glue API (tests/unit/backends/test_status_vocabularies.py
# checks them against botocore's model), the `state` of Glue's events among them.
# https://docs.aws.amazon.com/glue/latest/dg/aws-glue-api-jobs-runs.html (JobRun structure)
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
    "EXPIRED": 4,
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
    # A run that never got to run in its allowed time (job run queuing): the attempt failed and the
    # run's retry strategy decides, as for FAILED. Its run time limit is TIMEOUT, a state of its own.
    "EXPIRED": (RunStatus.FAILED, Reason.JOB_FAILED),
}


def map_glue_state(state: str) -> tuple[RunStatus, Reason]:
    return GLUE_STATUS[state]


class GlueJobDetail(EventDetail):
    # Glue's limits (GetJobRun: JobName and RunId are 1-255 characters): longer is not a Glue run.
    jobName: str = Field(min_length=1, max_length=255)
    jobRunId: str = Field(min_length=1, max_length=255)
    state: Literal[
        "WAITING", "STARTING", "RUNNING", "STOPPING", "SUCCEEDED", "FAILED", "ERROR", "TIMEOUT", "STOPPED", "EXPIRED"
    ]
    message: str | None = None


class GlueJobStateChange(StateChangeEvent):
    detail: GlueJobDetail  # type: ignore[assignment]


DETAIL_TYPE = "Glue Job State Change"
# Glue's "Job Run Status" events (NotificationProperty.NotifyDelayAfter) carry the same detail.
RUN_STATUS_DETAIL_TYPE = "Glue Job Run Status"


def _is_attempt(job_run: dict[str, Any], run_id: str, attempt: int) -> bool:
    arguments = job_run.get("Arguments", {})
    return arguments.get(GLUE_RUN_ID_ARGUMENT) == run_id and arguments.get(GLUE_ATTEMPT_ARGUMENT) == str(attempt)


class Glue:
    type = TYPE
    model = GlueBackend
    events = {DETAIL_TYPE: GlueJobStateChange, RUN_STATUS_DETAIL_TYPE: GlueJobStateChange}
    inline_event_limit = 4096  # Glue arguments are kept small to stay readable in its console
    job_name_limit = None
    job_console_path = None

    submit_api = "StartJobRun"

    def submit_request(self, backend: GlueBackend, run: RunSpec, settings: Settings) -> dict[str, Any]:
        """StartJobRun's request (https://docs.aws.amazon.com/glue/latest/webapi/API_StartJobRun.html),
        each attempt's --jobline_attempt aside."""
        job_name = backend.job_name or settings.glue_job_name
        if not job_name:
            raise RejectedInput(f"job {run.job_name!r} names no Glue job and the stack has no default one")
        capacity: dict[str, Any]
        if backend.max_capacity is None:
            capacity = {
                "WorkerType": backend.worker_type,
                "NumberOfWorkers": backend.number_of_workers,
                "ExecutionClass": backend.execution_class,
            }
        else:  # a Python shell job: MaxCapacity instead (StartJobRun takes one or the other)
            capacity = {"MaxCapacity": backend.max_capacity}
        return {
            "JobName": job_name,
            # Glue passes job parameters as --name arguments; the job reads them with getResolvedOptions
            # (JOBLINE_RUN_ID becomes --jobline_run_id).
            "Arguments": {**backend.arguments, **{f"--{k.lower()}": v for k, v in run.environment.items()}},
            "Timeout": -(-run.timeout_seconds // 60),
            **capacity,
        }

    def submit(self, request: dict[str, Any], run_id: str, attempt: int, clients: Clients) -> str:
        arguments = {**request["Arguments"], GLUE_ATTEMPT_ARGUMENT: str(attempt)}
        response = clients("glue").start_job_run(**{**request, "Arguments": arguments})
        return str(response["JobRunId"])

    def find_submitted(self, request: dict[str, Any], run_id: str, attempt: int, clients: Clients) -> str | None:
        """StartJobRun takes no idempotency token: the attempt's run is the one whose arguments name
        it. GetJobRuns lists the job's runs newest first (all of its kept history)."""
        pages = clients("glue").get_paginator("get_job_runs").paginate(JobName=request["JobName"])
        for page in pages:
            for job_run in page["JobRuns"]:
                if _is_attempt(job_run, run_id, attempt):
                    return str(job_run["Id"])
        return None

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
            if _is_attempt(run, row["run_id"], attempt):
                detail = {"jobName": glue_job, "jobRunId": run["Id"], "state": run["JobRunState"]}
                return as_event(GlueJobStateChange, "aws.glue", DETAIL_TYPE, detail, now_iso())
        return None

    def stop(self, row: dict[str, Any], attempt: int, record: dict[str, Any], reason: str, deps: Deps) -> str | None:
        """Stopping the execution leaves the attempt's job run going (it was not started with .sync).
        BatchStopJobRun answers per run: one that has ended is an error of its own, not raised."""
        glue_job = deps.catalog.get(row["job"]).backend.job_name or deps.settings.glue_job_name
        job_run = record.get("backend_job_id") or self.find_submitted(
            {"JobName": glue_job}, row["run_id"], attempt, deps.client
        )
        if not job_run:
            return None
        answer = deps.client("glue").batch_stop_job_run(JobName=glue_job, JobRunIds=[job_run])
        return str(job_run) if answer.get("SuccessfulSubmissions") else None


BACKEND = Glue()
