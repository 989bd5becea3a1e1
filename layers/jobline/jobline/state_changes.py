"""Backend job state change events, turned into observations of a run's attempt and applied."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field

from jobline.dal import RunTable
from jobline.runs import now_iso
from jobline.status import BATCH_RANK, apply_observation, map_batch_status

RUN_ID_TAG = "jobline:run-id"
ATTEMPT_TAG = "jobline:attempt"
_JOB_NAME = re.compile(r"^(?P<run_id>[a-z][a-z0-9-]*-[0-9a-f]{20})-(?P<attempt>\d+)$")


class _Detail(BaseModel):
    model_config = ConfigDict(extra="ignore")


class BatchContainer(_Detail):
    exitCode: int | None = None
    logStreamName: str | None = None
    reason: str | None = None


class BatchAttempt(_Detail):
    container: BatchContainer | None = None
    startedAt: int | None = None
    stoppedAt: int | None = None
    statusReason: str | None = None


class BatchJobDetail(_Detail):
    jobArn: str | None = None
    jobName: str
    jobId: str
    jobQueue: str
    status: Literal["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"]
    statusReason: str | None = None
    attempts: list[BatchAttempt] = Field(default_factory=list)
    createdAt: int | None = None
    startedAt: int | None = None
    stoppedAt: int | None = None
    container: BatchContainer | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class BatchJobStateChange(EventBridgeModel):
    detail: BatchJobDetail  # type: ignore[assignment]


def _iso(epoch_ms: int | None) -> str | None:
    if epoch_ms is None:
        return None
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event_time(event: EventBridgeModel) -> str:
    return event.time.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_attempt(detail: BatchJobDetail) -> tuple[str, int] | None:
    """Which run and attempt a Batch job is, from its tags or, failing that, its name."""
    if RUN_ID_TAG in detail.tags and detail.tags.get(ATTEMPT_TAG, "").isdigit():
        return detail.tags[RUN_ID_TAG], int(detail.tags[ATTEMPT_TAG])
    if match := _JOB_NAME.match(detail.jobName):
        return match["run_id"], int(match["attempt"])
    return None


def observe_batch(event: BatchJobStateChange, attempt: int) -> dict[str, Any]:
    detail = event.detail
    last = detail.attempts[-1] if detail.attempts else None
    container = detail.container or (last.container if last else None) or BatchContainer()
    exit_code = container.exitCode
    status, reason = map_batch_status(detail.status, detail.statusReason, exit_code)
    return {
        "attempt": attempt,
        "backend_status": detail.status,
        "status": status.value,
        "reason": reason.value,
        "rank": BATCH_RANK[detail.status],
        "event_time": _event_time(event),
        "backend_job_id": detail.jobId,
        "started_at": _iso(detail.startedAt or (last.startedAt if last else None)),
        "stopped_at": _iso(detail.stoppedAt or (last.stoppedAt if last else None)),
        "exit_code": exit_code,
        "log_stream": container.logStreamName,
        "status_reason": detail.statusReason,
    }


def apply_batch_event(event: BatchJobStateChange, table: RunTable) -> str:
    """Move the run's row forward; returns what happened, for the log."""
    identity = run_attempt(event.detail)
    if identity is None:
        return "ignored: not a jobline job"
    run_id, attempt = identity
    observed = observe_batch(event, attempt)

    def change(row: dict[str, Any]) -> dict[str, Any]:
        new = apply_observation(row, observed)
        if new != row:
            new["updated_at"] = now_iso()
        return new

    result = table.update_run(run_id, change)
    if result is None:
        return "ignored: no such run"
    before, after = result
    if before == after:
        return "unchanged: duplicate or stale event"
    return f"applied: {before['status']} -> {after['status']}"
