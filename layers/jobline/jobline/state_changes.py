"""Backend job state change events, turned into observations of a run's attempt and applied.

Each backend (jobline.backends) parses its own events and says which run and attempt one is
about; here the observation moves the run's row forward (jobline.status), and an execution
waiting on the attempt's task token is resumed. Whatever shape arrives, it is parsed into one of
the backends' models or refused as MalformedEvent; every string an event puts in the row is
bounded by the backends (jobline.backends.base.bounded).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from jobline.backends import EVENT_MODELS, AttemptDetail, Observation, StateChangeEvent, backend_of_event
from jobline.clock import now_iso
from jobline.dal import RunTable
from jobline.errors import MalformedEvent
from jobline.status import TERMINAL, RunStatus, apply_attempt_detail, apply_observation


class Effect(StrEnum):
    APPLIED = "applied"  # the row moved (or took new detail)
    UNCHANGED = "unchanged"  # a duplicate or stale event: the row already knew
    IGNORED = "ignored"  # not jobline's job, or no such run


@dataclass(frozen=True)
class Outcome:
    """What one state change did to its run; str() is the line the handler logs."""

    effect: Effect
    note: str
    before: RunStatus | None = None
    after: RunStatus | None = None
    resumed: bool = False  # a waiting execution was handed the attempt's outcome

    def __str__(self) -> str:
        return f"{self.effect}: {self.note}" + (" (execution resumed)" if self.resumed else "")


NOT_JOBLINE = Outcome(Effect.IGNORED, "not a jobline job")
NO_SUCH_RUN = Outcome(Effect.IGNORED, "no such run")
STALE = Outcome(Effect.UNCHANGED, "duplicate or stale event")


def parse_event(event: object) -> StateChangeEvent:
    """A state change event as its backend's model; MalformedEvent (or pydantic's ValidationError,
    saying what is wrong) for anything else."""
    if not isinstance(event, dict):
        raise MalformedEvent(f"a state change event is a JSON object, not {type(event).__name__}")
    detail_type = event.get("detail-type")
    if not isinstance(detail_type, str) or detail_type not in EVENT_MODELS:
        raise MalformedEvent(f"detail-type {detail_type!r:.200} is not a job state change jobline consumes")
    return EVENT_MODELS[detail_type].model_validate(event)


def apply_state_change(
    event: StateChangeEvent, table: RunTable, glue: Any, sfn: Any, time_left: Callable[[], float] | None = None
) -> Outcome:
    """Move the run's row forward. `glue` traces Glue events to their run; `sfn` resumes executions;
    `time_left` bounds the retries of a contended row (RunTable.update_run)."""
    seen = backend_of_event(event).observe(event, glue)
    if seen is None:
        return NOT_JOBLINE
    if (result := table.update_run(seen.run_id, _changed_at(seen.attempt, row_change(seen)), time_left)) is None:
        return NO_SUCH_RUN
    if isinstance(seen, AttemptDetail):
        return STALE if result[0] == result[1] else Outcome(Effect.APPLIED, f"{seen.name} detail")
    before, after = result
    resumed = _resume_waiting_execution(after, seen.attempt, sfn)
    if before == after and not resumed:
        return STALE
    statuses = RunStatus(before["status"]), RunStatus(after["status"])
    return Outcome(Effect.APPLIED, f"{statuses[0]} -> {statuses[1]}", *statuses, resumed=resumed)


def row_change(seen: Observation | AttemptDetail) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """What one event's news does to its run's row (jobline.status; no I/O)."""
    if isinstance(seen, AttemptDetail):
        return lambda row: apply_attempt_detail(row, seen.attempt, seen.name, seen.detail)
    return lambda row: apply_observation(row, seen.observed)


def _changed_at(
    attempt: int, change: Callable[[dict[str, Any]], dict[str, Any]]
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """`change`, stamped with the time it changed the row; an attempt the run cannot have (each
    keeps a record in the row, so unbounded numbers would grow it without end) is refused."""

    def apply(row: dict[str, Any]) -> dict[str, Any]:
        if not 1 <= attempt <= int(row["max_attempts"]):
            raise MalformedEvent(f"run {row['run_id']} has attempts 1 to {row['max_attempts']}, not {attempt}")
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
