"""Heal every partial state a run can be left in by lost events, failed calls and crashes.

- A live run that has not moved for a while is looked up where it lives: its backend job is
  described and the answer applied as one more state change (jobline.state_changes: the same
  forward-only writes, and an attempt that ended answers its task token, so a lost event or a
  lost answer heals alike); a run whose execution ended without recording an outcome is ended
  with the reason why. A run waiting for a concurrency slot is the slot sweep's.
- A run whose execution never started (StartExecution failed on every delivery, or the
  invocation died between the row and the start) is started from its stored row, or ended
  (FAILED, SubmitFailed) when its job can no longer run.
- A run that ended while its execution still runs (the answer to its attempt's task token failed
  on every retry, or an operator's stop could not stop it) is answered with its outcome, or its
  execution is stopped.
- Concurrency slots whose hand-off was lost (jobline.slots.Slots.sweep): holders whose runs
  ended are released, holders still waiting are woken again, free slots go to the oldest waiters.

One run that cannot be healed (a describe call refused, say) is logged and counted, and the
sweep goes on with the others. A sweep the invocation has no time left for stops before its
timeout (the next sweep starts again), never into a timeout whose retries would land in the
event DLQ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from jobline import run_view
from jobline.backends import BACKENDS
from jobline.budget import StepBudget
from jobline.clock import iso_z, now_iso
from jobline.deps import Deps
from jobline.errors import RejectedInput
from jobline.observability import count, logger
from jobline.runs import state_machine_arn
from jobline.slots import Slots
from jobline.state_changes import Effect, apply_state_change
from jobline.status import TERMINAL, Reason, RunStatus, end_write

LIVE_STATUSES = ("PENDING", "STARTING", "RUNNING")
DEAD_EXECUTION = {"FAILED": "InternalError", "TIMED_OUT": "InternalError", "ABORTED": "Execution stopped"}
UNCHANGED = "unchanged"
ERROR = "error: "  # how an outcome says the run could not be healed this time
LIST_PAGE_SIZE = 1000  # ListExecutions' maxResults limit
ROW_PAGE_SIZE = 200  # rows a page of the status index
# A sweep takes no step (a page, a row's read, a heal) with less than this left in its invocation,
# nor with less than twice its slowest step so far (one can take longer than this when calls are slow).
SWEEP_MARGIN_SECONDS = 10.0
CUT_SHORT = "sweep"  # the outcomes' key for a sweep that ran out of time


def stale_runs(
    deps: Deps, older_than: timedelta, now: datetime, out_of_time: Callable[[str], bool]
) -> Iterator[dict[str, Any]]:
    """Live runs not updated for `older_than`; PENDING ones sooner (Settings.unstarted_after_seconds):
    a started execution moves its row on at once (or registers as a slot's waiter, left to the
    slot sweep). Each page is a step of the sweep's budget: thousands of fresh rows yield nothing
    between pages."""
    unstarted = min(older_than, timedelta(seconds=deps.settings.unstarted_after_seconds))
    for status in LIVE_STATUSES:
        cutoff = iso_z(now - (unstarted if status == RunStatus.PENDING else older_than))
        start: dict[str, str] | None = None
        key = ("status", status)
        while True:
            if out_of_time(f"a page of {status} runs"):
                return
            rows, start = deps.table.query_runs("by-status-keys", key, limit=ROW_PAGE_SIZE, start_key=start)
            yield from (row for row in rows if row["updated_at"] < cutoff and not row.get("waiting_for"))
            if start is None:
                break


def running_executions(deps: Deps, out_of_time: Callable[[str], bool]) -> dict[str, dict[str, Any]] | None:
    """The catalog's running executions by ARN (one per live run, named after it): 1,000 a call,
    so a sweep over 10,000 waiting runs lists them in 10 calls instead of describing each; None if
    the sweep's time ran out first (a partial list would make running executions look dead).
    ListExecutions is eventually consistent: one that just ended may still be listed (healed at a
    later sweep), one that just started may not be (described, as before)."""
    sfn = deps.client("stepfunctions")
    running: dict[str, dict[str, Any]] = {}
    # One machine per retry policy of the catalog (jobline.runs.state_machine_arn).
    for machine in sorted({state_machine_arn(deps.settings, job) for job in deps.catalog.jobs}):
        token: dict[str, str] = {}
        while True:
            if out_of_time("a page of running executions"):
                return None
            page = sfn.list_executions(
                stateMachineArn=machine, statusFilter="RUNNING", maxResults=LIST_PAGE_SIZE, **token
            )
            running.update((execution["executionArn"], execution) for execution in page["executions"])
            if "nextToken" not in page:
                break
            token = {"nextToken": page["nextToken"]}
    return running


def ended_runs_still_executing(
    deps: Deps,
    running: dict[str, dict[str, Any]],
    older_than: timedelta,
    now: datetime,
    out_of_time: Callable[[str], bool],
) -> Iterator[tuple[dict[str, Any], str]]:
    """Runs whose row ended a while ago while their execution still runs, with that execution's
    ARN. Found from the running executions, so finding them costs what the live runs cost, not
    what the table holds; each row's read is a step of the sweep's budget (a burst's thousands of
    long waits are read and yield nothing)."""
    cutoff = now - older_than
    for execution in running.values():
        if execution["startDate"] >= cutoff:
            continue
        if out_of_time(f"the row of {execution['name']}"):
            return
        row = deps.table.get_run(execution["name"])
        if row and RunStatus(row["status"]) in TERMINAL and row["updated_at"] < iso_z(cutoff):
            yield row, execution["executionArn"]


def describe_backend(row: dict[str, Any], deps: Deps) -> Any | None:
    """The current attempt's backend job, as an event; None when there is nothing to ask about."""
    attempt = int(row.get("attempt") or 0)
    backend = BACKENDS.get(row["backend"])
    if attempt == 0 or backend is None:
        return None
    record = (row.get("attempts") or {}).get(str(attempt)) or {}
    return backend.describe(row, attempt, record, deps)


def heal(row: dict[str, Any], deps: Deps, running: dict[str, dict[str, Any]]) -> str:
    """A live run that has not moved: described at its backend, started, or ended. One whose
    execution is listed running (waiting for submit capacity, say) is left as it is."""
    sfn = deps.client("stepfunctions")
    if event := describe_backend(row, deps):
        outcome = apply_state_change(event, deps.table, deps.client("glue"), sfn)
        if outcome.effect is not Effect.UNCHANGED or outcome.answered:
            return str(outcome)
    # The row names its execution's machine from its creation (the ARN is deterministic).
    if not (arn := run_view.execution_arn(row, deps.settings.state_machine_prefix)) or arn in running:
        return UNCHANGED
    unstarted = int(row.get("attempt") or 0) == 0
    try:
        execution = sfn.describe_execution(executionArn=arn)["status"]
    except ClientError as error:
        if not unstarted or error.response["Error"]["Code"] != "ExecutionDoesNotExist":
            raise
        return _start(row, deps)
    if reason := DEAD_EXECUTION.get(execution):
        status = RunStatus.STOPPED if execution == "ABORTED" else RunStatus.FAILED
        return _end(row, deps, status, reason, f"ended: execution {execution}")
    return UNCHANGED


def _start(row: dict[str, Any], deps: Deps) -> str:
    """A row whose execution was never started: start it from the row, or end it visibly."""
    try:
        deps.starter.start_stored(deps.catalog.get(row["job"]), row)
    except RejectedInput as error:  # the job left the catalog, or can no longer run as declared
        logger.warning("run cannot be started; ended", extra={"run_id": row["run_id"], "reason": str(error)})
        return _end(row, deps, RunStatus.FAILED, f"{Reason.SUBMIT_FAILED}: {error}", "ended: cannot start")
    return "started: its execution had never started"


def _end(row: dict[str, Any], deps: Deps, status: RunStatus, reason: str, outcome: str) -> str:
    ended, _ = deps.table.write_run(row["run_id"], end_write(status, reason, now_iso()))
    return outcome if ended else UNCHANGED


def heal_ended(row: dict[str, Any], arn: str, deps: Deps) -> str:
    """A run that ended while its execution still runs: answer a waiting attempt with its outcome
    (describing the backend answers it, as its state change event would), else stop the
    execution. Its slot is the stream's (and the slot sweep's) to release, as for every run."""
    sfn = deps.client("stepfunctions")
    event = describe_backend(row, deps)
    if event and apply_state_change(event, deps.table, deps.client("glue"), sfn).answered:
        return "answered: its waiting execution was handed the outcome"
    try:
        sfn.stop_execution(
            executionArn=arn,
            error="jobline.RunEnded",
            cause=f"the run ended {row['status']} ({row['reason']}) at {row['status_time']}; its execution ran on",
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ExecutionDoesNotExist":
            raise
    return f"stopped: the run had ended {row['status']}, its execution ran on"


def reconcile(
    deps: Deps,
    older_than: timedelta | None = None,
    now: datetime | None = None,
    time_left: Callable[[], float] = lambda: float("inf"),
) -> dict[str, str]:
    """Heal every stale run (older than Settings.reconcile_after_seconds unless told), every ended
    run still executing and every job's slots, while `time_left()` allows; returns what happened
    to each run, by run id, to the slots the sweep changed, by "slot#<job>" ("error: ..." for what
    could not be healed this time), and under CUT_SHORT where the sweep stopped for time."""
    now = now or datetime.now(UTC)
    if older_than is None:
        older_than = timedelta(seconds=deps.settings.reconcile_after_seconds)
    outcomes: dict[str, str] = {}
    budget = StepBudget(time_left, SWEEP_MARGIN_SECONDS)

    def out_of_time(where: str) -> bool:
        if budget.allows_another():
            return False
        outcomes[CUT_SHORT] = f"cut short for time at {where}"
        logger.warning("reconcile sweep cut short for time", extra={"where": where, "checked": len(outcomes)})
        count("ReconcileCutShort")
        return True

    running = running_executions(deps, out_of_time)
    if running is None:
        return outcomes
    for row in stale_runs(deps, older_than, now, out_of_time):
        if out_of_time(f"stale run {row['run_id']}"):
            return outcomes
        outcomes[row["run_id"]] = _guarded(row["run_id"], lambda row=row: heal(row, deps, running))
    if CUT_SHORT in outcomes:
        return outcomes
    for row, arn in ended_runs_still_executing(deps, running, older_than, now, out_of_time):
        if out_of_time(f"ended run {row['run_id']}"):
            return outcomes
        outcomes[row["run_id"]] = _guarded(row["run_id"], lambda row=row, arn=arn: heal_ended(row, arn, deps))
    if CUT_SHORT in outcomes:
        return outcomes
    slots = Slots(deps.table, deps.client("stepfunctions"))
    for job in deps.catalog.jobs:
        if job.max_concurrent_runs:
            if out_of_time(f"the slots of {job.name}"):
                return outcomes
            key = f"slot#{job.name}"
            if (swept := _guarded(key, lambda job=job: "; ".join(slots.sweep(job.name)) or UNCHANGED)) != UNCHANGED:
                outcomes[key] = swept
    return outcomes


def _guarded(run_id: str, heal_one: Any) -> str:
    try:
        return str(heal_one())
    except Exception as error:  # one run must not abort the sweep: the next one retries it
        logger.exception("run could not be healed; retried at the next sweep", extra={"run_id": run_id})
        count("ReconcileFailures")
        return f"{ERROR}{type(error).__name__}: {error}"
