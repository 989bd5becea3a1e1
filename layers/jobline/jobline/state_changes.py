"""Backend job state change events, turned into observations of a run's attempt and applied.

Each backend (jobline.backends) parses its own events and says which run and attempt one is
about; here the observation moves the run's row forward (jobline.status), and an execution
waiting on the attempt's task token is resumed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from botocore.exceptions import ClientError

from jobline.backends import EVENT_MODELS, AttemptDetail, backend_of_event
from jobline.clock import now_iso
from jobline.dal import RunTable
from jobline.status import TERMINAL, RunStatus, apply_attempt_detail, apply_observation

# Every state change event jobline consumes, by detail-type.
MODELS = EVENT_MODELS


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


def model_for(event: dict[str, Any]) -> type[EventBridgeModel]:
    """The model for an event's detail-type (a KeyError names an event jobline does not consume)."""
    return MODELS[event.get("detail-type", "")]


def apply_state_change(event: EventBridgeModel, table: RunTable, glue: Any, sfn: Any) -> Outcome:
    """Move the run's row forward. `glue` traces Glue events to their run; `sfn` resumes executions."""
    seen = backend_of_event(event).observe(event, glue)
    if seen is None:
        return NOT_JOBLINE
    if isinstance(seen, AttemptDetail):
        change = _changed_at(lambda row: apply_attempt_detail(row, seen.attempt, seen.name, seen.detail))
        if (result := table.update_run(seen.run_id, change)) is None:
            return NO_SUCH_RUN
        return STALE if result[0] == result[1] else Outcome(Effect.APPLIED, f"{seen.name} detail")
    result = table.update_run(seen.run_id, _changed_at(lambda row: apply_observation(row, seen.observed)))
    if result is None:
        return NO_SUCH_RUN
    before, after = result
    resumed = _resume_waiting_execution(after, seen.attempt, sfn)
    if before == after and not resumed:
        return STALE
    statuses = RunStatus(before["status"]), RunStatus(after["status"])
    return Outcome(Effect.APPLIED, f"{statuses[0]} -> {statuses[1]}", *statuses, resumed=resumed)


def _changed_at(change: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
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


def __getattr__(name: str) -> type[EventBridgeModel]:
    """The event models (BatchJobStateChange, ...) live with their backends; code written when they
    lived here still finds them by name."""
    for model in MODELS.values():
        if model.__name__ == name:
            return model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
