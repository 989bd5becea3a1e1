"""The run status model and every rule that moves a run row: one module, no I/O.

Run-level rules only: what each backend's own statuses mean for a run is in its module in
jobline.backends (its status table and mapping).

A run row only moves forward. Its position is (attempt, rank, event time, tiebreak): a later
attempt beats an earlier one (a retried job goes RUNNING -> back to queue, so rank alone cannot
order events), a higher rank beats a lower one within an attempt, then the event time, then (for
events in the same second) the backend's own rank within the attempt and a digest of the event's
detail, so any order of delivery of the same events ends in the same row. Terminal statuses absorb
everything after them. Attempt records are merged whatever the run's position, so a late event
still fills in its attempt's start, stop, exit code and log stream.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    PENDING = "PENDING"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    STOPPED = "STOPPED"


TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMEOUT, RunStatus.STOPPED})


class Reason(StrEnum):
    RECENTLY_SUBMITTED = "Recently submitted"
    WAITING_FOR_SLOT = "Waiting for a concurrency slot"
    SUBMITTED = "Submitted"
    IN_QUEUE = "In queue"
    SCHEDULED = "Scheduled"
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    RETRYING = "Retrying"
    COMPLETED = "Completed"
    NON_ZERO_EXIT_CODE = "NonZeroExitCode"
    JOB_FAILED = "JobFailed"
    TIMEOUT = "Timeout"
    STOPPED_BY_USER = "Stopped by user"
    # Written only by the state machine (RecordOutcome): the job could not be submitted, or
    # the execution itself failed unexpectedly.
    SUBMIT_FAILED = "SubmitFailed"
    INTERNAL_ERROR = "InternalError"


class AttemptError(StrEnum):
    """How an attempt that did not succeed answers its execution's task token (SendTaskFailure's
    `error`): the run state machine's Retry and Catch name these (jobline_tools.codegen), so a
    retry can tell a timeout from a failure, which a `.sync` task's States.TaskFailed cannot."""

    NON_ZERO_EXIT_CODE = "Jobline.NonZeroExitCode"
    JOB_FAILED = "Jobline.JobFailed"
    TIMEOUT = "Jobline.Timeout"
    STOPPED = "Jobline.Stopped"
    SUBMIT_FAILED = "Jobline.SubmitFailed"


ATTEMPT_ERRORS = tuple(AttemptError)
# Retried while attempts are left; TIMEOUT too when the job's retry_on_timeout says so.
RETRIED_ATTEMPT_ERRORS = (AttemptError.NON_ZERO_EXIT_CODE, AttemptError.JOB_FAILED)

# Run-level ranks. RETRYING sits between RUNNING and terminal: an attempt ended but the run goes on.
RANK_PENDING = 0
RANK_STARTING = 10
RANK_RUNNING = 20
RANK_RETRYING = 25
RANK_TERMINAL = 30
RUN_RANK = {
    RunStatus.PENDING: RANK_PENDING,
    RunStatus.STARTING: RANK_STARTING,
    RunStatus.RUNNING: RANK_RUNNING,
    **dict.fromkeys(TERMINAL, RANK_TERMINAL),
}

ATTEMPT_FIELDS = (
    "backend_job_id",
    "started_at",
    "stopped_at",
    "exit_code",
    "log_stream",
    "status_reason",
    "training_job_arn",
)


def is_final_attempt(row: dict[str, Any], attempt: int, status: RunStatus) -> bool:
    """Whether an attempt that ended in `status` ends the run (the retry strategy is in the row)."""
    if status in (RunStatus.SUCCEEDED, RunStatus.STOPPED):
        return True
    if status is RunStatus.TIMEOUT and not row["retry_on_timeout"]:
        return True
    return attempt >= int(row["max_attempts"])


def position(row: dict[str, Any]) -> tuple[int, int, str, str]:
    """Where a row stands. `status_tiebreak` ("<backend rank, 4 digits>:<detail digest>") is written
    with every event that moves the row. The state machine's writes leave it as it was: their
    times carry milliseconds where events' have whole seconds, so they seldom tie with an event,
    and when they do the stale tiebreak still orders them the same way whatever the delivery."""
    return (
        int(row.get("attempt", 0)),
        int(row["status_rank"]),
        str(row.get("status_time", "")),
        str(row.get("status_tiebreak", "")),
    )


def _order(record: dict[str, Any]) -> tuple[int, str, str]:
    """An attempt record's (or attempt detail's) order: backend rank, event time, detail digest."""
    return int(record.get("rank", -1)), str(record.get("event_time", "")), str(record.get("tiebreak", ""))


def merge_attempt(record: dict[str, Any] | None, observed: dict[str, Any]) -> dict[str, Any]:
    """Merge one observation of an attempt into its record. The status fields come from the
    highest (rank, time, tiebreak); every other field keeps any value already known and fills the gaps."""
    if record is None:
        return dict(observed)
    newer, older = (observed, record) if _order(observed) > _order(record) else (record, observed)
    merged = dict(newer)
    for field, value in older.items():
        if merged.get(field) is None and value is not None:
            merged[field] = value
    return merged


def apply_attempt_detail(row: dict[str, Any], attempt: int, name: str, detail: dict[str, Any]) -> dict[str, Any]:
    """Detail that does not move the run (a service job's SageMaker training, under
    attempts.N.training): the highest (rank, time, tiebreak) wins, as in an attempt record."""
    attempts = dict(row.get("attempts") or {})
    record = dict(attempts.get(str(attempt)) or {})
    current = record.get(name)
    if current is not None and _order(current) >= _order(detail):
        return row
    record[name] = detail
    attempts[str(attempt)] = record
    return {**row, "attempts": attempts}


def apply_observation(row: dict[str, Any], observed: dict[str, Any]) -> dict[str, Any]:
    """Return the row after one observation of attempt `observed['attempt']` of its run.

    `observed` carries: attempt, backend_status, status (RunStatus of the attempt), reason, rank
    (backend rank within the attempt), event_time (ISO 8601), tiebreak (a digest of the event's
    detail), and the ATTEMPT_FIELDS it knows.
    """
    new = dict(row)
    attempts = dict(row.get("attempts") or {})
    key = str(observed["attempt"])
    attempts[key] = merge_attempt(attempts.get(key), _attempt_record(observed))
    new["attempts"] = attempts
    new["started_at"] = _earliest(a.get("started_at") for a in attempts.values())

    if RunStatus(row["status"]) in TERMINAL:
        return new

    status = RunStatus(observed["status"])
    reason: str = observed["reason"]
    if status in TERMINAL and not is_final_attempt(row, observed["attempt"], status):
        status, reason, rank = RunStatus.RUNNING, f"{Reason.RETRYING}: attempt {key} {reason}", RANK_RETRYING
    else:
        rank = RUN_RANK[status]
    tie = f"{int(observed['rank']):04d}:{observed.get('tiebreak', '')}"
    candidate = (int(observed["attempt"]), rank, observed["event_time"], tie)
    if candidate <= position(row):
        return new
    new.update(
        status=status.value,
        reason=reason,
        backend_status=observed["backend_status"],
        attempt=int(observed["attempt"]),
        status_rank=rank,
        status_time=observed["event_time"],
        status_tiebreak=tie,
    )
    if status in TERMINAL:
        new["ended_at"] = observed["event_time"]
    return new


def end_run(row: dict[str, Any], status: RunStatus, reason: str, at: str) -> dict[str, Any]:
    """The row ended at `at` from outside its events (an operator, the reconciler); a run that
    already ended keeps its end."""
    if RunStatus(row["status"]) in TERMINAL:
        return row
    return {
        **row,
        "status": status.value,
        "reason": reason,
        "status_rank": RANK_TERMINAL,
        "status_time": at,
        "ended_at": at,
    }


def stop(row: dict[str, Any], at: str) -> dict[str, Any]:
    """The row after an operator stopped its run at `at`."""
    return end_run(row, RunStatus.STOPPED, Reason.STOPPED_BY_USER.value, at)


def _attempt_record(observed: dict[str, Any]) -> dict[str, Any]:
    keep = ("attempt", "backend_status", "status", "reason", "rank", "event_time", "tiebreak", *ATTEMPT_FIELDS)
    return {k: observed.get(k) for k in keep}


def _earliest(values: Any) -> Any:
    known = [v for v in values if v is not None]
    return min(known) if known else None
