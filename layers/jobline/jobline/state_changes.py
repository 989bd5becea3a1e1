"""Backend job state change events, turned into observations of a run's attempt and applied.

Each backend (jobline.backends) parses its own events and says which run and attempt one is
about; here the observation moves the run's row forward with one conditional write (the rules
are jobline.status's), and the execution waiting on an attempt that ended is answered: the
attempt's task token (in its ticket, written by the submitter) gets SendTaskSuccess, or
SendTaskFailure with the error its Retry and Catch name (jobline.status.ATTEMPT_ERROR_FOR).
Whatever shape arrives, it is parsed into one of the backends' models or refused as
MalformedEvent; every string an event puts in the row is bounded by the backends
(jobline.backends.base.bounded).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from jobline.backends import EVENT_MODELS, AttemptDetail, Observation, StateChangeEvent, backend_of_event
from jobline.clock import now_iso
from jobline.dal import RunTable
from jobline.errors import MalformedEvent, RowContended
from jobline.status import (
    ATTEMPT_ERROR_FOR,
    TERMINAL,
    Reason,
    RowWrite,
    RunStatus,
    detail_write,
    event_write,
    run_move,
)

# SendTask* answers that mean nothing waits on the token any more (answered before, the
# execution moved on, stopped or timed out): https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html
NOTHING_WAITS = frozenset({"InvalidToken", "TaskTimedOut", "TaskDoesNotExist"})
# A write whose condition fails is re-planned from the row DynamoDB returned; each failure means
# another writer changed the row in between, so a few rounds always suffice.
WRITE_ROUNDS = 8
# SendTaskFailure's cause is at most 32,768 characters.
CAUSE_LIMIT = 32_768


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
    answered: bool = False  # the execution waiting on the attempt was handed its outcome

    def __str__(self) -> str:
        return f"{self.effect}: {self.note}" + (" (execution answered)" if self.answered else "")


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


def apply_state_change(event: StateChangeEvent, table: RunTable, glue: Any, sfn: Any) -> Outcome:
    """Move the run's row forward and answer the attempt's task token when the attempt ended.
    `glue` traces Glue events to their run; `sfn` answers task tokens."""
    seen = backend_of_event(event).observe(event, glue)
    if seen is None:
        return NOT_JOBLINE
    if isinstance(seen, AttemptDetail):
        return apply_detail(seen, table)
    return apply_observation(seen, table, sfn)


def apply_detail(seen: AttemptDetail, table: RunTable) -> Outcome:
    now = now_iso()
    result = write_planned(
        table, seen.run_id, lambda row: detail_write(seen.run_id, seen.attempt, seen.name, seen.detail, now, row)
    )
    if result is None:
        return NO_SUCH_RUN
    return Outcome(Effect.APPLIED, f"{seen.name} detail") if result[0] else STALE


def apply_observation(seen: Observation, table: RunTable, sfn: Any) -> Outcome:
    """One observation of an attempt: the row's write, then (the attempt ended) its answer. The
    answer is given again for a duplicate, since the first may have been lost, unless the run
    has gone on to a later attempt (then its execution had the answer)."""
    observed, now = seen.observed, now_iso()
    ended = RunStatus(observed["status"]) in TERMINAL
    ticket = table.attempt_ticket(seen.run_id, seen.attempt) if ended else None
    move = run_move(observed, ticket)
    planned: list[RowWrite] = []

    def plan(row: dict[str, Any] | None) -> RowWrite | None:
        write = event_write(seen.run_id, observed, move, now, row)
        planned[:] = [write] if write else []
        return write

    if (result := write_planned(table, seen.run_id, plan)) is None:
        return NO_SUCH_RUN
    applied, before = result
    moved = applied and planned[0].moves
    attempt_now = seen.attempt if moved else int(before.get("attempt", 0))
    answered = bool(ended and ticket and attempt_now == seen.attempt and answer_attempt(sfn, ticket, observed))
    if not applied:
        return Outcome(STALE.effect, STALE.note, answered=answered)
    statuses = RunStatus(before["status"]), move.status if moved else RunStatus(before["status"])
    note = f"{statuses[0]} -> {statuses[1]}" if moved else f"attempt {seen.attempt} record"
    return Outcome(Effect.APPLIED, note, *statuses, answered=answered)


def write_planned(
    table: RunTable, run_id: str, plan: Callable[[dict[str, Any] | None], RowWrite | None]
) -> tuple[bool, dict[str, Any]] | None:
    """Make the write `plan(None)` (the normal path); when its condition fails, the write
    `plan(row)` says is still owed given the row DynamoDB returned, until one holds or none is
    owed. (applied, the row before the write or as it stands); None when there is no such run."""
    write = plan(None)
    for _ in range(WRITE_ROUNDS):
        assert write is not None  # the normal path always writes; later rounds return below
        applied, row = table.write_run(run_id, write)
        if row is None:
            return None
        if applied or (write := plan(row)) is None:
            return applied, row
    raise RowContended(f"run {run_id}: changed by {WRITE_ROUNDS} concurrent writers in a row")


def answer_attempt(sfn: Any, ticket: Mapping[str, Any], observed: Mapping[str, Any]) -> bool:
    """Hand the attempt's outcome to the execution waiting on its task token. False when nothing
    waits any more; any other refusal is raised (the event is delivered again)."""
    token = ticket.get("task_token")
    if not token:
        return False
    status = RunStatus(observed["status"])
    try:
        if status is RunStatus.SUCCEEDED:
            output = {"attempt": observed["attempt"], "status": status.value, "reason": observed["reason"]}
            sfn.send_task_success(taskToken=token, output=json.dumps(output))
        else:
            why = observed.get("status_reason") or observed["reason"]
            cause = f"attempt {observed['attempt']} {status}: {why}"[:CAUSE_LIMIT]
            sfn.send_task_failure(
                taskToken=token, error=str(ATTEMPT_ERROR_FOR[Reason(observed["reason"])]), cause=cause
            )
    except ClientError as error:
        if error.response["Error"]["Code"] in NOTHING_WAITS:
            return False
        raise
    return True
