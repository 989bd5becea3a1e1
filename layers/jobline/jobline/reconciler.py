"""Heal runs that lost their state change events (Glue's are best effort; any may be lost).

A run that is not terminal and has not moved for a while is looked up where it lives: its
backend job is described and the answer applied as one more observation (through the same
observers as live events, so the same forward-only rules hold), which also resumes an execution
still waiting on a service job's task token; a run whose execution ended without recording an
outcome is ended with the reason why.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from botocore.exceptions import ClientError

from jobline.deps import Deps
from jobline.runs import now_iso
from jobline.state_changes import (
    GLUE_RUN_ID_ARGUMENT,
    BatchJobStateChange,
    GlueJobStateChange,
    ProcessingJobStateChange,
    ServiceJobStateChange,
    apply_state_change,
)
from jobline.status import RunStatus, end_run

LIVE_STATUSES = ("PENDING", "STARTING", "RUNNING")
DEAD_EXECUTION = {"FAILED": "InternalError", "TIMED_OUT": "InternalError", "ABORTED": "Execution stopped"}


def stale_runs(deps: Deps, older_than: timedelta, now: datetime) -> Iterator[dict[str, Any]]:
    cutoff = (now - older_than).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for status in LIVE_STATUSES:
        start: dict[str, str] | None = None
        while True:
            rows, start = deps.table.query_runs("by-status", ("status", status), limit=200, start_key=start)
            yield from (row for row in rows if row["updated_at"] < cutoff)
            if start is None:
                break


def _as_event(model: type[EventBridgeModel], source: str, detail_type: str, detail: dict[str, Any]) -> Any:
    """A describe call's answer in the shape of the backend's state change event."""
    return model.model_validate(
        {
            "version": "0",
            "id": f"jobline-reconciler-{now_iso()}",
            "detail-type": detail_type,
            "source": source,
            "account": "",
            "time": now_iso(),
            "region": "",
            "resources": [],
            "detail": detail,
        }
    )


def _epoch_ms(value: Any) -> Any:
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else value


def describe_backend(row: dict[str, Any], deps: Deps) -> Any | None:
    """The current attempt's backend job, as an event; None when there is nothing to ask about."""
    attempt = int(row.get("attempt") or 0)
    if attempt == 0:
        return None
    record = (row.get("attempts") or {}).get(str(attempt)) or {}
    name = f"{row['run_id']}-{attempt}"
    backend = row["backend"]
    if backend == "batch" and record.get("backend_job_id"):
        jobs = deps.client("batch").describe_jobs(jobs=[record["backend_job_id"]])["jobs"]
        return jobs and _as_event(BatchJobStateChange, "aws.batch", "Batch Job State Change", jobs[0])
    if backend == "batch_service" and (job_id := record.get("backend_job_id") or row.get("service_job_id")):
        job = deps.client("batch").describe_service_job(jobId=job_id)
        return _as_event(ServiceJobStateChange, "aws.batch", "Batch Service Job State Change", job)
    if backend == "sagemaker_processing":
        try:
            job = deps.client("sagemaker").describe_processing_job(ProcessingJobName=name)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
                return None  # not created yet
            raise
        job = {k: _epoch_ms(v) for k, v in job.items()}
        return _as_event(ProcessingJobStateChange, "aws.sagemaker", "SageMaker Processing Job State Change", job)
    if backend == "glue":
        glue_job = deps.catalog.get(row["job"]).backend.job_name or deps.settings.glue_job_name
        for run in deps.client("glue").get_job_runs(JobName=glue_job, MaxResults=200)["JobRuns"]:
            arguments = run.get("Arguments", {})
            if arguments.get(GLUE_RUN_ID_ARGUMENT) == row["run_id"] and arguments.get("--jobline_attempt") == str(
                attempt
            ):
                detail = {"jobName": glue_job, "jobRunId": run["Id"], "state": run["JobRunState"]}
                return _as_event(GlueJobStateChange, "aws.glue", "Glue Job State Change", detail)
    return None


def heal(row: dict[str, Any], deps: Deps) -> str:
    sfn = deps.client("stepfunctions")
    if event := describe_backend(row, deps):
        outcome = apply_state_change(event, deps.table, deps.client("glue"), sfn)
        if not outcome.startswith("unchanged"):
            return outcome
    if arn := row.get("execution_arn"):
        execution = sfn.describe_execution(executionArn=arn)["status"]
        if reason := DEAD_EXECUTION.get(execution):
            status = RunStatus.STOPPED if execution == "ABORTED" else RunStatus.FAILED
            ended = deps.table.update_run(row["run_id"], lambda r: {**end_run(r, status, reason, now_iso())})
            return f"ended: execution {execution}" if ended and ended[0] != ended[1] else "unchanged"
    return "unchanged"


def reconcile(deps: Deps, older_than: timedelta, now: datetime | None = None) -> dict[str, str]:
    """Heal every stale run; returns what happened to each, by run id."""
    now = now or datetime.now(UTC)
    return {row["run_id"]: heal(row, deps) for row in stale_runs(deps, older_than, now)}
