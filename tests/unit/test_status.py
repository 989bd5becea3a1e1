"""Run status rules: rows only move forward, whatever the order or repetition of events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jobline.backends.batch import BatchJobStateChange, observe_batch
from jobline.status import RANK_PENDING, apply_observation

EVENTS = Path(__file__).parents[2] / "events"
TEMPLATE_EVENT = json.loads((EVENTS / "batch-job-running.json").read_text())
BASE_MS = 1_795_237_000_000


def new_row(max_attempts: int = 3, retry_on_timeout: bool = False) -> dict[str, Any]:
    return {
        "run_id": "word-count-0123456789abcdef0123",
        "status": "PENDING",
        "reason": "Recently submitted",
        "status_rank": RANK_PENDING,
        "status_time": "2026-11-21T00:00:00.000Z",
        "attempt": 0,
        "max_attempts": max_attempts,
        "retry_on_timeout": retry_on_timeout,
        "attempts": {},
    }


def batch_event(attempt: int, status: str, second: int, outcome: str = "ok") -> BatchJobStateChange:
    event = json.loads(json.dumps(TEMPLATE_EVENT))
    detail = event["detail"]
    detail.update(status=status, jobId=f"job-{attempt}", tags={"jobline:run-id": "r", "jobline:attempt": str(attempt)})
    event["time"] = f"2026-11-21T00:{attempt:02d}:{second:02d}Z"
    detail.pop("startedAt", None)
    detail["container"].pop("logStreamName", None)
    if status in ("RUNNING", "SUCCEEDED", "FAILED"):
        detail["startedAt"] = BASE_MS + attempt * 60_000 + 10_000
        detail["container"]["logStreamName"] = f"default/job-{attempt}"
    if status in ("SUCCEEDED", "FAILED"):
        detail["stoppedAt"] = BASE_MS + attempt * 60_000 + 50_000
        detail["container"]["exitCode"] = 0 if status == "SUCCEEDED" else 1
        if outcome == "timeout":
            detail["statusReason"] = "Job attempt duration exceeded timeout"
            detail["container"].pop("exitCode")
    return BatchJobStateChange.model_validate(event)


def attempt_events(attempt: int, final: str) -> list[BatchJobStateChange]:
    statuses = ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", final]
    return [batch_event(attempt, status, i) for i, status in enumerate(statuses)]


def apply_all(row: dict[str, Any], events: list[BatchJobStateChange]) -> dict[str, Any]:
    for event in events:
        attempt = int(event.detail.tags["jobline:attempt"])
        row = apply_observation(row, observe_batch(event, attempt))
    return row


@st.composite
def run_histories(draw: st.DrawFn) -> tuple[int, list[BatchJobStateChange]]:
    max_attempts = draw(st.integers(1, 3))
    used = draw(st.integers(1, max_attempts))
    succeeds = draw(st.booleans())
    events: list[BatchJobStateChange] = []
    for attempt in range(1, used + 1):
        last = attempt == used
        events += attempt_events(attempt, "SUCCEEDED" if last and succeeds else "FAILED")
    cut = draw(st.integers(1, len(events)))  # the history so far: the run may still be going
    return max_attempts, events[:cut]


@settings(max_examples=200, deadline=None)
@given(history=run_histories(), data=st.data())
def test_any_duplication_and_permutation_ends_in_the_ordered_row(
    history: tuple[int, list[BatchJobStateChange]], data: st.DataObject
) -> None:
    max_attempts, ordered = history
    delivered = data.draw(st.lists(st.sampled_from(ordered), min_size=0, max_size=len(ordered) * 2))
    delivered = data.draw(st.permutations(ordered + delivered))
    expected = apply_all(new_row(max_attempts), ordered)
    assert apply_all(new_row(max_attempts), delivered) == expected


def test_a_retried_attempt_keeps_the_run_running_then_the_last_one_ends_it() -> None:
    row = apply_all(new_row(max_attempts=2), attempt_events(1, "FAILED"))
    assert (row["status"], row["reason"]) == ("RUNNING", "Retrying: attempt 1 NonZeroExitCode")
    row = apply_all(row, attempt_events(2, "FAILED"))
    assert (row["status"], row["reason"], row["attempt"]) == ("FAILED", "NonZeroExitCode", 2)
    assert set(row["attempts"]) == {"1", "2"}
    assert row["attempts"]["1"]["exit_code"] == 1
    assert row["ended_at"] == "2026-11-21T00:02:05.000Z"


def test_terminal_absorbs_but_a_late_event_still_fills_its_attempt() -> None:
    done = apply_all(new_row(), [batch_event(1, "SUCCEEDED", 9)])
    done["attempts"]["1"]["log_stream"] = None  # as if the final event had not carried it
    late = apply_all(done, [batch_event(1, "RUNNING", 3)])
    assert (late["status"], late["reason"]) == ("SUCCEEDED", "Completed")
    assert late["attempts"]["1"]["backend_status"] == "SUCCEEDED"
    assert late["attempts"]["1"]["log_stream"] == "default/job-1"


def test_an_earlier_attempt_never_overrides_a_later_one() -> None:
    row = apply_all(new_row(), [batch_event(2, "RUNNING", 1)])
    row = apply_all(row, [batch_event(1, "FAILED", 9)])
    assert (row["status"], row["attempt"]) == ("RUNNING", 2)


def test_a_timeout_ends_the_run_unless_the_strategy_retries_timeouts() -> None:
    event = batch_event(1, "FAILED", 5, outcome="timeout")
    assert apply_all(new_row(max_attempts=3), [event])["status"] == "TIMEOUT"
    assert apply_all(new_row(max_attempts=3, retry_on_timeout=True), [event])["status"] == "RUNNING"
