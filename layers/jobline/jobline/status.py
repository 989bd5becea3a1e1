"""The run status model and every rule that moves a run row: one module, no I/O.

Run-level rules only: what each backend's own statuses mean for a run is in its module in
jobline.backends (its status table and mapping).

A run row only moves forward. Its position is (attempt, rank, event time, tiebreak): a later
attempt beats an earlier one (a retried job goes RUNNING -> back to queue, so rank alone cannot
order events), a higher rank beats a lower one within an attempt, then the event time, then (for
events in the same second) the backend's own rank within the attempt and a digest of the event's
detail, so any order of delivery of the same events ends in the same row. Terminal statuses absorb
everything after them. Each attempt keeps a record (attempts.<n>): its status fields come from the
attempt's highest (backend rank, event time, digest), every other field from the highest event
that knew it, so a late event still fills in its attempt's start, stop, exit code and log stream.

The rules live in the writes: an event is one UpdateItem whose ConditionExpression is the
position rule (`event_write` with no current row), so no event reads its row first. When the
condition fails (a duplicate, late or reordered event, or one that came before the submitter's
claim made its attempt record), the row DynamoDB returns with the failure says which smaller
write the event still owes (`event_write` with that row): the record's newer status, the gaps of
the record (`if_not_exists`), or the record itself. `position` and `record_order` are the same
rules in Python; that second write's condition holds them again, so a row that moved meanwhile
fails it instead of being overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from jobline.errors import MalformedEvent


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
    SLOT_GRANTED = "Concurrency slot granted"
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
    # Written only by the submitter or the state machine: the job could not be submitted, or
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
# The error an attempt's task token is failed with, by the reason the attempt ended.
ATTEMPT_ERROR_FOR: dict[Reason, AttemptError] = {
    Reason.NON_ZERO_EXIT_CODE: AttemptError.NON_ZERO_EXIT_CODE,
    Reason.JOB_FAILED: AttemptError.JOB_FAILED,
    Reason.TIMEOUT: AttemptError.TIMEOUT,
    Reason.STOPPED_BY_USER: AttemptError.STOPPED,
    Reason.SUBMIT_FAILED: AttemptError.SUBMIT_FAILED,
}

# Run-level ranks. RETRYING sits between RUNNING and terminal: an attempt ended but the run goes on.
# CLAIMED is the submitter's STARTING "In queue" (its claim of an attempt): below every event of
# that attempt, whose job is submitted after the claim. Event times are whole seconds ("time":
# "2017-10-23T17:56:03Z", https://docs.aws.amazon.com/batch/latest/userguide/batch_job_events.html),
# so one from the claim's second would otherwise sort before the claim's milliseconds and lose.
RANK_PENDING = 0
RANK_CLAIMED = 5
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
# The most attempts a run can have (the catalog's RetryStrategy.attempts).
ATTEMPTS_LIMIT = 10
# What an attempt record keeps of an observation: its status fields, then what the event knew (its
# number is the record's key in `attempts`).
RECORD_FIELDS = ("backend_status", "status", "reason", "rank", "event_time", "tiebreak", *ATTEMPT_FIELDS)


def is_final_attempt(ticket: Mapping[str, Any] | None, attempt: int, status: RunStatus) -> bool:
    """Whether an attempt that ended in `status` ends the run. The retry strategy is in the
    attempt's ticket (`max_attempts`, `retry_on_timeout`, written by the submitter); without a
    ticket nothing waits to run another attempt, so the run ends."""
    if status in (RunStatus.SUCCEEDED, RunStatus.STOPPED) or ticket is None:
        return True
    if status is RunStatus.TIMEOUT and not ticket["retry_on_timeout"]:
        return True
    return attempt >= int(ticket["max_attempts"])


@dataclass(frozen=True)
class Move:
    """Where one observation would put its run: the row's status, reason and run-level rank."""

    status: RunStatus
    reason: str
    rank: int


def run_move(observed: Mapping[str, Any], ticket: Mapping[str, Any] | None) -> Move:
    """The run status an observation stands for: an attempt that ended but is not the run's last
    keeps the run RUNNING ("Retrying: attempt n <why>") between RUNNING and terminal."""
    status, reason = RunStatus(observed["status"]), str(observed["reason"])
    if status in TERMINAL and not is_final_attempt(ticket, int(observed["attempt"]), status):
        return Move(RunStatus.RUNNING, f"{Reason.RETRYING}: attempt {observed['attempt']} {reason}", RANK_RETRYING)
    return Move(status, reason, RUN_RANK[status])


def position(row: Mapping[str, Any]) -> tuple[int, int, str, str]:
    """Where a row stands. `status_tiebreak` ("<backend rank, 4 digits>:<detail digest>") is written
    with every event that moves the row; other writers (the claim, an end from outside) leave it."""
    return (
        int(row.get("attempt", 0)),
        int(row["status_rank"]),
        str(row.get("status_time", "")),
        str(row.get("status_tiebreak", "")),
    )


def record_order(record: Mapping[str, Any] | None) -> tuple[int, str, str]:
    """An attempt record's (or attempt detail's) order: backend rank, event time, detail digest."""
    record = record or {}
    return int(record.get("rank", -1)), str(record.get("event_time", "")), str(record.get("tiebreak", ""))


@dataclass
class RowWrite:
    """One UpdateItem on a run row: its expressions and their placeholders (plain values);
    `moves` when it moves the run's status (else it only adds to an attempt record)."""

    moves: bool = False
    sets: list[str] = field(default_factory=list)
    conditions: list[str] = field(default_factory=lambda: ["attribute_exists(#pk)"])
    names: dict[str, str] = field(default_factory=lambda: {"#pk": "pk"})
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def update(self) -> str:
        return "SET " + ", ".join(self.sets)

    @property
    def condition(self) -> str:
        return " AND ".join(f"({c})" if " OR " in c else c for c in self.conditions)

    def name(self, attribute: str) -> str:
        placeholder = "#a" + "".join(c for c in attribute if c.isalnum())
        self.names[placeholder] = attribute
        return placeholder

    def value(self, key: str, value: Any) -> str:
        placeholder = ":" + "".join(c for c in key if c.isalnum())
        self.values[placeholder] = value
        return placeholder

    def set(self, path: str, value: Any, key: str, *, if_missing: bool = False) -> None:
        placeholder = self.value(key, value)
        self.sets.append(f"{path} = if_not_exists({path}, {placeholder})" if if_missing else f"{path} = {placeholder}")


def _older_than(write: RowWrite, path: str, order: tuple[int, str, str], key: str) -> str:
    """The condition "what is at `path` is older than `order`" (record_order in an expression)."""
    rank, time, digest = (write.name(n) for n in ("rank", "event_time", "tiebreak"))
    r, t, d = (write.value(f"{key}{part}", v) for part, v in zip(("rank", "time", "tie"), order, strict=True))
    return (
        f"attribute_not_exists({path}.{rank}) OR {path}.{rank} < {r} OR ({path}.{rank} = {r} AND "
        f"(attribute_not_exists({path}.{time}) OR {path}.{time} < {t} OR ({path}.{time} = {t} AND "
        f"(attribute_not_exists({path}.{digest}) OR {path}.{digest} < {d}))))"
    )


def _row_rule(write: RowWrite, candidate: tuple[int, int, str, str]) -> str:
    """The condition "the row is not final and stands before `candidate`" (position in an expression)."""
    attempt, rank, time, tie = (write.name(n) for n in ("attempt", "status_rank", "status_time", "status_tiebreak"))
    n, r, t, b = (write.value(k, v) for k, v in zip(("n", "rank", "time", "tie"), candidate, strict=True))
    terminal = write.value("terminal", RANK_TERMINAL)
    return (
        f"{rank} < {terminal} AND (attribute_not_exists({attempt}) OR {attempt} < {n} OR ({attempt} = {n} AND "
        f"({rank} < {r} OR ({rank} = {r} AND (attribute_not_exists({time}) OR {time} < {t} OR ({time} = {t} AND "
        f"(attribute_not_exists({tie}) OR {tie} < {b})))))))"
    )


def _record_path(write: RowWrite, attempt: int) -> str:
    return f"{write.name('attempts')}.{write.name(str(attempt))}"


def _attempt_of(run_id: str, attempt: int) -> int:
    """An attempt number a run can have: each attempt keeps a record in the row, so an unbounded
    number would grow it without end (the catalog's RetryStrategy allows ATTEMPTS_LIMIT)."""
    if not 1 <= attempt <= ATTEMPTS_LIMIT:
        raise MalformedEvent(f"run {run_id}: attempts are 1 to {ATTEMPTS_LIMIT}, not {attempt}")
    return attempt


def _make_record(
    write: RowWrite, path: str, attempt: int, record: dict[str, Any], current: Mapping[str, Any] | None
) -> None:
    """Make a missing attempt record, never over one another writer made meanwhile (and the
    `attempts` map itself when the row has none)."""
    if current is not None and "attempts" not in current:
        write.names.pop(write.name(str(attempt)))  # the record's own path goes unused
        attempts = write.name("attempts")
        write.conditions.append(f"attribute_not_exists({attempts})")
        write.set(attempts, {str(attempt): record}, "record")
        return
    write.conditions.append(f"attribute_not_exists({path})")
    write.set(path, record, "record")


def event_write(
    run_id: str, observed: Mapping[str, Any], move: Move, now: str, current: Mapping[str, Any] | None = None
) -> RowWrite | None:
    """The write one observation of attempt `observed['attempt']` makes. Without `current`: the
    normal path (the row moves, the claim made the attempt's record, the event is its newest).
    With the row a failed write returned: the write the event still owes, None when nothing.

    `observed` carries: attempt, backend_status, status (RunStatus of the attempt), reason, rank
    (backend rank within the attempt), event_time (ISO 8601), tiebreak (a digest of the event's
    detail), and the ATTEMPT_FIELDS it knows.
    """
    attempt = _attempt_of(run_id, int(observed["attempt"]))
    fields = {k: observed[k] for k in RECORD_FIELDS if observed.get(k) is not None}
    order = record_order(fields)
    tie = f"{int(observed['rank']):04d}:{observed.get('tiebreak', '')}"
    candidate = (attempt, move.rank, str(observed["event_time"]), tie)
    if current is None:
        moves, record = True, "newer"
    else:
        moves = int(current["status_rank"]) < RANK_TERMINAL and candidate > position(current)
        known = (current.get("attempts") or {}).get(str(attempt))
        record = "missing" if known is None else "newer" if record_order(known) < order else "older"
        if known is not None and record == "older":
            fields = {k: v for k, v in fields.items() if k not in known}
            if not moves and not fields:
                return None
    write = RowWrite()
    path = _record_path(write, attempt)
    if record == "missing":
        _make_record(write, path, attempt, fields, current)
    else:
        write.conditions.append(f"attribute_exists({path})")
        if record == "newer":
            write.conditions.append(_older_than(write, path, order, "r"))
        for i, (name, value) in enumerate(fields.items()):
            write.set(f"{path}.{write.name(name)}", value, f"f{i}", if_missing=record == "older")
    if moves:
        write.moves = True
        write.conditions.append(_row_rule(write, candidate))
        row = {
            "status": move.status.value,
            "reason": move.reason,
            "backend_status": observed["backend_status"],
            "attempt": attempt,
            "status_rank": move.rank,
            "status_time": candidate[2],
            "status_tiebreak": candidate[3],
        }
        if move.status in TERMINAL:
            row["ended_at"] = candidate[2]
        for name, value in row.items():
            write.set(write.name(name), value, name)
    write.set(write.name("updated_at"), now, "now")
    return write


def detail_write(
    run_id: str, attempt: int, name: str, detail: Mapping[str, Any], now: str, current: Mapping[str, Any] | None = None
) -> RowWrite | None:
    """Detail that does not move the run (a service job's SageMaker training, under
    attempts.N.<name>): the highest (rank, time, tiebreak) wins, as in an attempt record. Without
    `current` the normal path (the record exists); with it, the write still owed, or None."""
    _attempt_of(run_id, attempt)
    order = record_order(detail)
    missing = False
    if current is not None:
        known = (current.get("attempts") or {}).get(str(attempt))
        missing = known is None
        if known is not None and name in known and record_order(known[name]) >= order:
            return None
    write = RowWrite()
    path = _record_path(write, attempt)
    if missing:
        _make_record(write, path, attempt, {name: dict(detail)}, current)
    else:
        detail_path = f"{path}.{write.name(name)}"
        write.conditions += [f"attribute_exists({path})", _older_than(write, detail_path, order, "d")]
        write.set(detail_path, dict(detail), "detail")
    write.set(write.name("updated_at"), now, "now")
    return write


def end_write(status: RunStatus, reason: str, at: str) -> RowWrite:
    """The row ends at `at` from outside its events (an operator, the reconciler); a run that
    already ended keeps its end (the condition fails)."""
    write = RowWrite()
    rank = write.name("status_rank")
    write.conditions.append(f"{rank} < {write.value('terminal', RANK_TERMINAL)}")
    values = {"status": status.value, "reason": reason, "status_rank": RANK_TERMINAL, "status_time": at}
    for name, value in {**values, "ended_at": at, "updated_at": at}.items():
        write.set(write.name(name), value, name)
    return write


def end_run(row: dict[str, Any], status: RunStatus, reason: str, at: str) -> dict[str, Any]:
    """The row after it ended at `at` from outside its events (as end_write writes it)."""
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
