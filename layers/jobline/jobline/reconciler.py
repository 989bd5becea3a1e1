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

from jobline.backends import BACKENDS
from jobline.clock import iso_z, now_iso
from jobline.deps import Deps
from jobline.state_changes import Effect, apply_state_change
from jobline.status import RunStatus, end_run

LIVE_STATUSES = ("PENDING", "STARTING", "RUNNING")
DEAD_EXECUTION = {"FAILED": "InternalError", "TIMED_OUT": "InternalError", "ABORTED": "Execution stopped"}


def stale_runs(deps: Deps, older_than: timedelta, now: datetime) -> Iterator[dict[str, Any]]:
    cutoff = iso_z(now - older_than)
    for status in LIVE_STATUSES:
        start: dict[str, str] | None = None
        while True:
            rows, start = deps.table.query_runs("by-status", ("status", status), limit=200, start_key=start)
            yield from (row for row in rows if row["updated_at"] < cutoff)
            if start is None:
                break


def describe_backend(row: dict[str, Any], deps: Deps) -> Any | None:
    """The current attempt's backend job, as an event; None when there is nothing to ask about."""
    attempt = int(row.get("attempt") or 0)
    backend = BACKENDS.get(row["backend"])
    if attempt == 0 or backend is None:
        return None
    record = (row.get("attempts") or {}).get(str(attempt)) or {}
    return backend.describe(row, attempt, record, deps)


def heal(row: dict[str, Any], deps: Deps) -> str:
    sfn = deps.client("stepfunctions")
    if event := describe_backend(row, deps):
        outcome = apply_state_change(event, deps.table, deps.client("glue"), sfn)
        if outcome.effect is not Effect.UNCHANGED:
            return str(outcome)
    if arn := row.get("execution_arn"):
        execution = sfn.describe_execution(executionArn=arn)["status"]
        if reason := DEAD_EXECUTION.get(execution):
            status = RunStatus.STOPPED if execution == "ABORTED" else RunStatus.FAILED
            ended = deps.table.update_run(row["run_id"], lambda r: {**end_run(r, status, reason, now_iso())})
            return f"ended: execution {execution}" if ended and ended[0] != ended[1] else "unchanged"
    return "unchanged"


def reconcile(deps: Deps, older_than: timedelta | None = None, now: datetime | None = None) -> dict[str, str]:
    """Heal every stale run (older than Settings.reconcile_after_seconds unless told); returns what
    happened to each, by run id."""
    now = now or datetime.now(UTC)
    if older_than is None:
        older_than = timedelta(seconds=deps.settings.reconcile_after_seconds)
    return {row["run_id"]: heal(row, deps) for row in stale_runs(deps, older_than, now)}
