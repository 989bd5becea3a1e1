"""Run status rules, as DynamoDB applies them (moto): rows only move forward, whatever the order
or repetition of events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobline import run_view
from jobline.backends import Observation
from jobline.backends.batch import BatchJobStateChange, observe_batch
from jobline.catalog import RetryStrategy
from jobline.errors import MalformedEvent
from jobline.status import ATTEMPTS_LIMIT, Reason, RunStatus, end_write
from tests.unit.event_lab import Lab, lab, stored  # noqa: F401  (the lab fixture)

EVENTS = Path(__file__).parents[2] / "events"
TEMPLATE_EVENT = json.loads((EVENTS / "batch-job-running.json").read_text())
BASE_MS = 1_795_237_000_000
FIXTURES_OK = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def batch_event(attempt: int, status: str, second: int, outcome: str = "ok") -> Observation:
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
    parsed = BatchJobStateChange.model_validate(event)
    return Observation("r", attempt, observe_batch(parsed, attempt))


def attempt_events(attempt: int, final: str) -> list[Observation]:
    statuses = ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", final]
    return [batch_event(attempt, status, i) for i, status in enumerate(statuses)]


@st.composite
def run_histories(draw: st.DrawFn) -> tuple[int, list[Observation]]:
    max_attempts = draw(st.integers(1, 3))
    used = draw(st.integers(1, max_attempts))
    succeeds = draw(st.booleans())
    events: list[Observation] = []
    for attempt in range(1, used + 1):
        last = attempt == used
        events += attempt_events(attempt, "SUCCEEDED" if last and succeeds else "FAILED")
    cut = draw(st.integers(1, len(events)))  # the history so far: the run may still be going
    return max_attempts, events[:cut]


@FIXTURES_OK
@given(history=run_histories(), data=st.data())
def test_any_duplication_and_permutation_ends_in_the_ordered_row(
    lab: Lab,  # noqa: F811
    history: tuple[int, list[Observation]],
    data: st.DataObject,
) -> None:
    max_attempts, ordered = history
    delivered = data.draw(st.lists(st.sampled_from(ordered), min_size=0, max_size=len(ordered)))
    delivered = data.draw(st.permutations(ordered + delivered))
    expected = lab.deliver_all(lab.new_run(max_attempts), ordered)
    assert stored(lab.deliver_all(lab.new_run(max_attempts), delivered)) == stored(expected)


def test_the_ordered_history_of_a_retried_run(lab: Lab) -> None:  # noqa: F811
    run = lab.new_run(max_attempts=2)
    row = lab.deliver_all(run, attempt_events(1, "FAILED"))
    assert (row["status"], row["reason"], row["status_rank"]) == ("RUNNING", "Retrying: attempt 1 NonZeroExitCode", 25)
    assert "ended_at" not in row
    row = lab.deliver_all(run, attempt_events(2, "FAILED"))
    assert (row["status"], row["reason"], row["attempt"]) == ("FAILED", "NonZeroExitCode", 2)
    assert set(row["attempts"]) == {"1", "2"}
    assert row["attempts"]["1"]["exit_code"] == 1
    assert row["attempts"]["2"]["log_stream"] == "default/job-2"
    assert row["ended_at"] == "2026-11-21T00:02:05.000Z"
    assert run_view.started_at(row) == row["attempts"]["1"]["started_at"] < row["attempts"]["2"]["started_at"]
    assert "started_at" not in row  # the attempts hold it: the row's size stays within one write unit


def test_terminal_absorbs_but_a_late_event_still_fills_its_attempt(lab: Lab) -> None:  # noqa: F811
    run = lab.new_run()
    done = batch_event(1, "SUCCEEDED", 9)
    del done.observed["log_stream"]  # as if the final event had not carried it
    lab.deliver_all(run, [done])
    late = lab.deliver_all(run, [batch_event(1, "RUNNING", 3)])
    assert (late["status"], late["reason"]) == ("SUCCEEDED", "Completed")
    assert late["attempts"]["1"]["backend_status"] == "SUCCEEDED"
    assert late["attempts"]["1"]["log_stream"] == "default/job-1"


def test_a_late_terminal_event_after_an_end_from_outside_still_updates_its_attempt_record(lab: Lab) -> None:  # noqa: F811
    run = lab.new_run()
    lab.deliver_all(run, [batch_event(1, "RUNNING", 3)])
    lab.table.write_run(run, end_write(RunStatus.STOPPED, Reason.STOPPED_BY_USER, "2026-11-21T00:01:05.000Z"))
    row = lab.deliver_all(run, [batch_event(1, "FAILED", 9)])
    assert (row["status"], row["reason"]) == ("STOPPED", "Stopped by user")
    assert (row["attempts"]["1"]["status"], row["attempts"]["1"]["exit_code"]) == ("FAILED", 1)


def test_an_earlier_attempt_never_overrides_a_later_one(lab: Lab) -> None:  # noqa: F811
    run = lab.new_run()
    row = lab.deliver_all(run, [batch_event(2, "RUNNING", 1), batch_event(1, "FAILED", 9)])
    assert (row["status"], row["attempt"]) == ("RUNNING", 2)
    assert row["attempts"]["1"]["status"] == "FAILED"
    assert run_view.started_at(row) == row["attempts"]["1"]["started_at"]  # the earliest attempt's, however late


def test_a_timeout_ends_the_run_unless_the_strategy_retries_timeouts(lab: Lab) -> None:  # noqa: F811
    event = batch_event(1, "FAILED", 5, outcome="timeout")
    assert lab.deliver_all(lab.new_run(max_attempts=3), [event])["status"] == "TIMEOUT"
    assert lab.deliver_all(lab.new_run(max_attempts=3, retry_on_timeout=True), [event])["status"] == "RUNNING"


def test_an_attempt_without_a_ticket_ends_the_run(lab: Lab) -> None:  # noqa: F811
    row = lab.deliver_all(lab.new_run(max_attempts=3, tickets=False), [batch_event(1, "FAILED", 5)])
    assert (row["status"], row["reason"]) == ("FAILED", "NonZeroExitCode")


def test_attempt_numbers_past_the_catalogs_limit_are_refused_unwritten(lab: Lab) -> None:  # noqa: F811
    assert RetryStrategy.model_fields["attempts"].metadata[-1].le == ATTEMPTS_LIMIT
    run = lab.new_run()
    with pytest.raises(MalformedEvent, match="attempts are 1 to 10, not 11"):
        lab.deliver(run, batch_event(ATTEMPTS_LIMIT + 1, "RUNNING", 1))
    assert lab.row(run)["attempts"] == {}


def test_a_row_without_an_attempts_map_gets_one_with_the_first_record(lab: Lab) -> None:  # noqa: F811
    run = lab.new_run()
    lab.client.update_item(TableName="runs", Key={"pk": {"S": f"RUN#{run}"}}, UpdateExpression="REMOVE attempts")
    row = lab.deliver_all(run, [batch_event(1, "RUNNING", 3), batch_event(1, "STARTING", 2)])
    assert (row["status"], row["attempts"]["1"]["backend_status"]) == ("RUNNING", "RUNNING")


def test_every_event_of_a_claimed_attempt_moves_the_row_in_one_write(lab: Lab) -> None:  # noqa: F811
    """The claim is STARTING "In queue" at a rank below the attempt's events: its job's first event,
    stamped with EventBridge's whole second (00:01:03, before the claim's 00:01:03.500), moves the
    row with its normal-path write, no failed condition and no second write."""
    run = lab.new_run(max_attempts=1)
    assert lab.table.claim_attempt(run, 1, "2026-11-21T00:01:03.500Z", lease_until=0) is None
    calls: list[str] = []

    def seen(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        calls.append(parsed.get("Error", {}).get("Code", "made"))

    lab.client.meta.events.register("after-call.dynamodb.UpdateItem", seen)
    try:
        outcome = lab.deliver(run, batch_event(1, "STARTING", 3))
    finally:
        lab.client.meta.events.unregister("after-call.dynamodb.UpdateItem", seen)
    assert str(outcome) == "applied: STARTING -> STARTING"
    assert calls == ["made"]
    row = lab.row(run)
    assert (row["status"], row["reason"], row["attempts"]["1"]["backend_status"]) == (
        "STARTING",
        "Starting",
        "STARTING",
    )
