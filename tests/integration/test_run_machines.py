"""The generated run state machines on moto's engine: one callback Task per attempt, retried by the
job's policy, the guard timeout and internal failures recorded by the execution, and the slot
states of a job with a concurrency limit. The tests answer each attempt's token as the state
change handler does (jobline.status.AttemptError names)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from jobline.status import AttemptError
from jobline_tools import run_machines
from tests.aws_resources import job_spec
from tests.integration.conftest import (
    Stack,
    billed_transitions,
    fail,
    history,
    item,
    next_attempt,
    no_attempt,
    put_row,
    receive_attempt,
    start,
    states_entered,
    succeed,
    wait_for_end,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
RUN = "word-count-0123456789abcdef0123"


def _retry(attempts: int, **fields: Any) -> dict[str, Any]:
    return {"retry": {"attempts": attempts, "interval_seconds": 1, **fields}}


# ---------------------------------------------------------------- one attempt
def test_a_first_attempt_success_without_a_limit_is_one_billed_transition(stack: Stack) -> None:
    deps = stack.deploy(job_spec(**_retry(3)))
    arn = start(stack, deps, RUN)

    attempt = receive_attempt(stack)
    assert {k: v for k, v in attempt.items() if k != "token"} == {
        "run_id": RUN,
        "job": "word-count",
        "retry_count": 0,
        "request": {"jobName": RUN, "note": "the submitter's business"},
    }
    succeed(stack, attempt)

    assert wait_for_end(stack, arn)["status"] == "SUCCEEDED"
    events = history(stack, arn)
    assert states_entered(events) == ["Attempt"]
    assert billed_transitions(events) == 1  # issue 11: at most 2


def test_each_backend_sends_its_attempts_to_its_own_submit_queue(stack: Stack) -> None:
    glue = job_spec("glue-etl", backend={"type": "glue"})
    deps = stack.deploy(glue)
    arn = start(stack, deps, "glue-etl-0123456789abcdef0123")

    succeed(stack, receive_attempt(stack, backend="glue"))

    assert wait_for_end(stack, arn)["status"] == "SUCCEEDED"
    assert no_attempt(stack, "batch")


@pytest.mark.parametrize("error", [AttemptError.STOPPED, AttemptError.SUBMIT_FAILED])
def test_a_stopped_or_refused_attempt_is_never_retried(stack: Stack, error: AttemptError) -> None:
    deps = stack.deploy(job_spec(**_retry(3, retry_on_timeout=True)))
    arn = start(stack, deps, RUN)

    fail(stack, receive_attempt(stack), error)

    ended = wait_for_end(stack, arn)
    assert (ended["status"], ended["error"]) == ("FAILED", error)
    assert states_entered(history(stack, arn)) == ["Attempt", "RunFailed"]
    assert no_attempt(stack)


def test_a_timeout_ends_the_run_when_the_policy_does_not_retry_timeouts(stack: Stack) -> None:
    deps = stack.deploy(job_spec(**_retry(3, retry_on_timeout=False)))
    arn = start(stack, deps, RUN)

    fail(stack, receive_attempt(stack), AttemptError.TIMEOUT)

    ended = wait_for_end(stack, arn)
    assert (ended["status"], ended["error"]) == ("FAILED", AttemptError.TIMEOUT)
    events = history(stack, arn)
    assert states_entered(events) == ["Attempt", "RunFailed"]
    assert billed_transitions(events) == 2
    assert no_attempt(stack)


def test_a_single_attempt_policy_retries_nothing(stack: Stack) -> None:
    deps = stack.deploy(job_spec(**_retry(1)))
    arn = start(stack, deps, RUN)

    fail(stack, receive_attempt(stack), AttemptError.NON_ZERO_EXIT_CODE)

    ended = wait_for_end(stack, arn)
    assert (ended["status"], ended["error"]) == ("FAILED", AttemptError.NON_ZERO_EXIT_CODE)
    assert no_attempt(stack)


# ---------------------------------------------------------------- retries by the policy
def _retry_gaps(events: list[dict[str, Any]]) -> list[float]:
    """Seconds from each failed try of Attempt to the next try's start."""
    failed: datetime | None = None
    gaps = []
    for event in events:
        if event["type"] == "TaskFailed":
            failed = event["timestamp"]
        elif event["type"] == "TaskScheduled" and failed is not None:
            gaps.append((event["timestamp"] - failed).total_seconds())
            failed = None
    return gaps


def test_failed_attempts_are_retried_after_the_policys_delays(stack: Stack) -> None:
    deps = stack.deploy(job_spec(**_retry(3, backoff_rate=3)))
    delays = deps.catalog.jobs[0].retry.delays()
    assert delays == [1, 3]
    arn = start(stack, deps, RUN)

    first = receive_attempt(stack)
    fail(stack, first, AttemptError.NON_ZERO_EXIT_CODE)
    second = next_attempt(stack, first)
    fail(stack, second, AttemptError.JOB_FAILED)
    third = next_attempt(stack, second)
    succeed(stack, third)

    assert wait_for_end(stack, arn)["status"] == "SUCCEEDED"
    assert [a["retry_count"] for a in (first, second, third)] == [0, 1, 2]
    events = history(stack, arn)
    assert states_entered(events) == ["Attempt"]
    assert billed_transitions(events) == 3  # one more per further attempt (issue 11: at most 2 more)
    gaps = _retry_gaps(events)
    # The retrier waits min(interval x backoff^(n-1), cap): never sooner, and not the next delay.
    assert len(gaps) == 2
    for gap, delay in zip(gaps, delays, strict=True):
        assert delay <= gap < delay * 3, (gaps, delays)


def test_the_last_attempts_failure_fails_the_run(stack: Stack) -> None:
    deps = stack.deploy(job_spec(**_retry(2)))
    arn = start(stack, deps, RUN)

    first = receive_attempt(stack)
    fail(stack, first, AttemptError.NON_ZERO_EXIT_CODE)
    fail(stack, next_attempt(stack, first), AttemptError.NON_ZERO_EXIT_CODE)

    ended = wait_for_end(stack, arn)
    assert (ended["status"], ended["error"]) == ("FAILED", AttemptError.NON_ZERO_EXIT_CODE)
    events = history(stack, arn)
    assert states_entered(events) == ["Attempt", "RunFailed"]
    assert billed_transitions(events) == 3  # two attempts and the Fail state
    assert no_attempt(stack)


def test_a_timeout_is_retried_when_the_policy_says_so(stack: Stack) -> None:
    deps = stack.deploy(job_spec(**_retry(2, retry_on_timeout=True)))
    arn = start(stack, deps, RUN)

    first = receive_attempt(stack)
    fail(stack, first, AttemptError.TIMEOUT)
    second = next_attempt(stack, first)
    succeed(stack, second)

    assert wait_for_end(stack, arn)["status"] == "SUCCEEDED"
    assert second["retry_count"] == 1


# ---------------------------------------------------------------- what no event reports
def test_the_guard_timeout_records_timeout_on_the_row(stack: Stack) -> None:
    deps = stack.deploy(job_spec(**_retry(3, retry_on_timeout=True)))
    put_row(stack, RUN, "word-count")
    arn = start(stack, deps, RUN, guard=1)
    receive_attempt(stack)  # submitted, and its end is never reported

    ended = wait_for_end(stack, arn)

    assert (ended["status"], ended["error"]) == ("FAILED", run_machines.GUARD_TIMEOUT_ERROR)
    assert states_entered(history(stack, arn)) == ["Attempt", "RecordTimeout", "RunTimedOut"]
    written = item(stack, f"RUN#{RUN}")
    assert (written["status"]["S"], written["reason"]["S"], written["status_rank"]["N"]) == ("TIMEOUT", "Timeout", "30")
    assert written["ended_at"] == written["status_time"] == written["updated_at"]


def test_the_guard_timeout_leaves_a_row_that_already_ended(stack: Stack) -> None:
    deps = stack.deploy(job_spec(**_retry(1)))
    put_row(stack, RUN, "word-count", rank=30, status="STOPPED")
    arn = start(stack, deps, RUN, guard=1)
    receive_attempt(stack)

    assert wait_for_end(stack, arn)["error"] == run_machines.GUARD_TIMEOUT_ERROR
    assert states_entered(history(stack, arn)) == ["Attempt", "RecordTimeout", "RunTimedOut"]
    assert item(stack, f"RUN#{RUN}")["status"]["S"] == "STOPPED"


# ---------------------------------------------------------------- a concurrency limit
def _slot(stack: Stack, job: str = "word-count") -> dict[str, Any]:
    return item(stack, f"SLOT#{job}")


def test_a_jobs_first_run_opens_its_slot_map_and_takes_a_slot(stack: Stack) -> None:
    deps = stack.deploy(job_spec(max_concurrent_runs=2))
    arn = start(stack, deps, RUN)

    succeed(stack, receive_attempt(stack))

    assert wait_for_end(stack, arn)["status"] == "SUCCEEDED"
    assert states_entered(history(stack, arn)) == ["AcquireSlot", "OpenSlot", "AcquireOpenedSlot", "Attempt"]
    assert set(_slot(stack)["holders"]["M"]) == {RUN}


def test_a_first_attempt_success_with_a_free_slot_is_two_billed_transitions(stack: Stack) -> None:
    deps = stack.deploy(job_spec(max_concurrent_runs=2))
    # The job's slot item as its earlier runs left it: another run holds one of the two slots.
    holders = {"M": {"word-count-other": {"S": "2030-01-01T00:00:00Z"}}}
    stack.client("dynamodb").put_item(TableName="runs", Item={"pk": {"S": "SLOT#word-count"}, "holders": holders})
    arn = start(stack, deps, RUN)

    succeed(stack, receive_attempt(stack))

    assert wait_for_end(stack, arn)["status"] == "SUCCEEDED"
    events = history(stack, arn)
    assert states_entered(events) == ["AcquireSlot", "Attempt"]
    assert billed_transitions(events) == 2  # issue 11: at most 4
    assert set(_slot(stack)["holders"]["M"]) == {"word-count-other", RUN}  # released by the stream consumer


def test_a_run_at_the_limit_waits_on_its_row_and_goes_on_when_handed_a_slot(stack: Stack) -> None:
    deps = stack.deploy(job_spec(max_concurrent_runs=1))
    holders = {"M": {"word-count-other": {"S": "2030-01-01T00:00:00Z"}}}
    stack.client("dynamodb").put_item(TableName="runs", Item={"pk": {"S": "SLOT#word-count"}, "holders": holders})
    put_row(stack, RUN, "word-count", rank=0, status="PENDING")
    arn = start(stack, deps, RUN)

    waiting = wait_until(lambda: item(stack, f"RUN#{RUN}").get("slot_token"), what="the run to register its wait")
    registered = item(stack, f"RUN#{RUN}")
    assert registered["waiting_for"]["S"] == "slot#word-count"
    assert registered["reason"]["S"] == "Waiting for a concurrency slot"
    assert no_attempt(stack)
    # The hand-off, as the run table's stream consumer makes it: the slot moves, then the token.
    stack.client("dynamodb").update_item(
        TableName="runs",
        Key={"pk": {"S": "SLOT#word-count"}},
        UpdateExpression="SET holders.#next = :now REMOVE holders.#done",
        ExpressionAttributeNames={"#next": RUN, "#done": "word-count-other"},
        ExpressionAttributeValues={":now": {"S": "2030-01-01T00:01:00Z"}},
    )
    stack.client("stepfunctions").send_task_success(taskToken=waiting["S"], output="{}")

    succeed(stack, receive_attempt(stack))

    assert wait_for_end(stack, arn)["status"] == "SUCCEEDED"
    events = history(stack, arn)
    assert states_entered(events) == ["AcquireSlot", "WaitForSlot", "Attempt"]
    assert billed_transitions(events) == 3


def test_a_run_that_ended_before_it_could_wait_for_a_slot_runs_nothing(stack: Stack) -> None:
    deps = stack.deploy(job_spec(max_concurrent_runs=1))
    holders = {"M": {"word-count-other": {"S": "2030-01-01T00:00:00Z"}}}
    stack.client("dynamodb").put_item(TableName="runs", Item={"pk": {"S": "SLOT#word-count"}, "holders": holders})
    put_row(stack, RUN, "word-count", rank=30, status="STOPPED")
    arn = start(stack, deps, RUN)

    ended = wait_for_end(stack, arn)

    assert (ended["status"], ended["error"]) == ("FAILED", "DynamoDb.ConditionalCheckFailedException")
    assert states_entered(history(stack, arn)) == ["AcquireSlot", "WaitForSlot", "RunFailed"]
    assert no_attempt(stack)


def test_an_attempt_the_machine_cannot_send_ends_the_run_failed_internal_error(stack: Stack) -> None:
    deps = stack.deploy(job_spec(**_retry(3)))
    put_row(stack, RUN, "word-count", rank=0, status="PENDING")
    stack.client("sqs").delete_queue(QueueUrl=stack.queues["batch"])
    arn = start(stack, deps, RUN)

    ended = wait_for_end(stack, arn)

    assert (ended["status"], ended["error"]) == ("FAILED", run_machines.INTERNAL_ERROR)
    assert states_entered(history(stack, arn)) == ["Attempt", "RecordFailure", "RunBroke"]
    written = item(stack, f"RUN#{RUN}")
    assert (written["status"]["S"], written["reason"]["S"]) == ("FAILED", "InternalError")
