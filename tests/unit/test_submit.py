"""The submitter on moto, driven by the messages a real Attempt state sends: each attempt gets one
backend job, whatever is redelivered, reordered, lost, throttled or refused on the way."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from botocore.config import Config

from jobline import quota
from jobline.status import RANK_CLAIMED
from jobline.submit import Outcome, SubmitDeferred, process_message
from tests.faults.injection import Injector, Rule, installed
from tests.unit.submitting import LONG_ENOUGH, Stack, stack, time_left

__all__ = ["stack"]


def with_retry_count(body: str, retry_count: int, token: str | None = None) -> str:
    message = json.loads(body)
    return json.dumps({**message, "retry_count": retry_count, "token": token or message["token"]})


def set_row(stack: Stack, run_id: str, update: str, values: dict[str, Any], names: dict[str, str]) -> None:
    """Move the row as another writer would (the state change handler, an operator's stop)."""
    stack.client("dynamodb").update_item(
        TableName="runs",
        Key={"pk": {"S": f"RUN#{run_id}"}},
        UpdateExpression=update,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def fail_attempt(stack: Stack, run_id: str, attempt: int) -> None:
    """Attempt `attempt` ended FAILED with attempts left: the run is RUNNING "Retrying"."""
    set_row(
        stack,
        run_id,
        "SET #s = :running, #r = :retrying, #k = :rank, #as.#n.#s = :failed",
        {":running": {"S": "RUNNING"}, ":retrying": {"S": "Retrying"}, ":rank": {"N": "25"}}
        | {":failed": {"S": "FAILED"}},
        {"#s": "status", "#r": "reason", "#k": "status_rank", "#as": "attempts", "#n": str(attempt)},
    )


def test_the_attempt_states_message_submits_the_first_attempt(stack: Stack) -> None:
    run_id = stack.start("word-count")
    body = stack.message(run_id)
    assert process_message(stack.submitter(), body, time_left()) == Outcome.SUBMITTED
    (job,) = stack.batch_jobs(run_id)
    assert job["jobName"] == f"{run_id}-1"
    environment = {e["name"]: e["value"] for e in job["container"]["environment"]}
    assert (environment["JOBLINE_ATTEMPT"], environment["JOBLINE_RUN_ID"]) == ("1", run_id)
    assert job["tags"] == {"jobline:run-id": run_id, "jobline:job": "word-count", "jobline:attempt": "1"}
    assert job["timeout"] == {"attemptDurationSeconds": 600}
    row = stack.row(run_id)
    assert (row["attempt"], row["status"], row["reason"], row["status_rank"]) == (
        1,
        "STARTING",
        "In queue",
        RANK_CLAIMED,
    )
    assert row["attempts"]["1"]["backend_job_id"] == job["jobId"]
    assert "lease_until" not in row["attempts"]["1"]  # moot once the job is recorded: not kept in the row
    ticket = stack.table.attempt_ticket(run_id, 1)
    assert ticket is not None
    assert ticket["task_token"] == json.loads(body)["token"]
    expected = {"retry_count": 0, "max_attempts": 3, "retry_on_timeout": False, "backend": "batch"}
    assert {k: ticket[k] for k in expected} == expected


def test_a_duplicate_message_makes_no_second_job(stack: Stack) -> None:
    run_id = stack.start("word-count")
    body = stack.message(run_id)
    outcomes = [process_message(stack.submitter(), body, time_left()) for _ in range(3)]
    assert outcomes == [Outcome.SUBMITTED, Outcome.DUPLICATE, Outcome.DUPLICATE]
    assert len(stack.batch_jobs(run_id)) == 1


def test_concurrent_deliveries_of_one_message_make_one_job(stack: Stack) -> None:
    """Standard queues may deliver a message twice at once: the claim, then the attempt's submit
    lease, let one of them submit; the other goes back to its queue (or finds the job recorded)."""
    run_id = stack.start("word-count")
    body = stack.message(run_id)
    barrier = threading.Barrier(4)
    outcomes: list[Any] = []

    def deliver() -> None:
        barrier.wait()
        try:
            outcomes.append(process_message(stack.submitter(), body, time_left()))
        except SubmitDeferred as deferred:
            outcomes.append(deferred)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(Outcome.SUBMITTED) == 1
    assert all(o in (Outcome.SUBMITTED, Outcome.DUPLICATE) or isinstance(o, SubmitDeferred) for o in outcomes)
    stack.clock.advance(60)  # the deferred ones come back after the visibility timeout
    assert process_message(stack.submitter(), body, time_left()) == Outcome.DUPLICATE
    assert len(stack.batch_jobs(run_id)) == 1


def test_a_lost_submit_response_is_found_by_the_redelivery(stack: Stack) -> None:
    """Issue 10's last gap: SubmitJob ran at AWS, its response never came. The message goes back;
    its redelivery finds the attempt's job by its name and records it, and submits nothing."""
    run_id = stack.start("word-count")
    body = stack.message(run_id)
    injector = Injector(rules=[Rule("batch", "SubmitJob", 1, "lost_response")])
    with installed(injector), injector.handling(), pytest.raises(SubmitDeferred) as deferred:
        process_message(stack.submitter(), body, time_left())
    assert injector.fired == 1
    assert deferred.value.after_seconds > LONG_ENOUGH  # back once this invocation's lease has ended
    (job,) = stack.batch_jobs(run_id)
    assert "backend_job_id" not in stack.row(run_id)["attempts"]["1"]
    stack.clock.advance(60)
    assert process_message(stack.submitter(), body, time_left()) == Outcome.FOUND
    assert [j["jobId"] for j in stack.batch_jobs(run_id)] == [job["jobId"]]
    assert stack.row(run_id)["attempts"]["1"]["backend_job_id"] == job["jobId"]


def test_a_redelivery_while_the_first_delivery_still_submits_goes_back(stack: Stack) -> None:
    run_id = stack.start("word-count")
    body = stack.message(run_id)
    injector = Injector(rules=[Rule("batch", "SubmitJob", 1, "lost_response")])
    with installed(injector), injector.handling(), pytest.raises(SubmitDeferred):
        process_message(stack.submitter(), body, time_left())
    with pytest.raises(SubmitDeferred, match="another submitter holds attempt 1"):
        process_message(stack.submitter(), body, time_left())  # the first invocation's lease holds
    assert len(stack.batch_jobs(run_id)) == 1


def test_nothing_is_submitted_for_a_stopped_run(stack: Stack) -> None:
    run_id = stack.start("word-count")
    body = stack.message(run_id)
    set_row(
        stack,
        run_id,
        "SET #s = :stopped, #k = :terminal",
        {":stopped": {"S": "STOPPED"}, ":terminal": {"N": "30"}},
        {"#s": "status", "#k": "status_rank"},
    )
    assert process_message(stack.submitter(), body, time_left()) == Outcome.ENDED
    assert stack.batch_jobs(run_id) == []
    assert stack.row(run_id)["attempt"] == 0


def test_a_message_for_a_run_that_ended_answers_its_token_with_the_end(stack: Stack) -> None:
    """A retried send's newer message, not yet claimed when the attempt ended (its event answered
    the older token): the run's end answers this one, so the execution does not wait for its guard."""
    run_id = stack.start("word-count")
    body = stack.message(run_id)
    set_row(
        stack,
        run_id,
        "SET #s = :done, #r = :completed, #k = :terminal, #a = :one",
        {":done": {"S": "SUCCEEDED"}, ":completed": {"S": "Completed"}, ":terminal": {"N": "30"}, ":one": {"N": "1"}},
        {"#s": "status", "#r": "reason", "#k": "status_rank", "#a": "attempt"},
    )
    assert process_message(stack.submitter(), body, time_left()) == Outcome.ENDED
    assert stack.batch_jobs(run_id) == []
    assert stack.execution(run_id)["status"] == "SUCCEEDED"
    # Answered again by a redelivery: the token is spent, quietly.
    assert process_message(stack.submitter(), body, time_left()) == Outcome.ENDED


def test_a_skipped_retry_number_claims_the_next_attempt_exactly(stack: Stack) -> None:
    """An SQS retry of the Attempt state's send counts in $$.State.RetryCount: the row numbers attempts."""
    run_id = stack.start("word-count")
    body = stack.message(run_id)
    assert process_message(stack.submitter(), with_retry_count(body, 1), time_left()) == Outcome.SUBMITTED
    assert stack.row(run_id)["attempt"] == 1
    fail_attempt(stack, run_id, 1)
    assert process_message(stack.submitter(), with_retry_count(body, 2, "token-b"), time_left()) == Outcome.SUBMITTED
    fail_attempt(stack, run_id, 2)
    # The state machine's next try counts both retries and the skipped one: 4, for attempt 3.
    assert process_message(stack.submitter(), with_retry_count(body, 4, "token-c"), time_left()) == Outcome.SUBMITTED
    names = sorted(job["jobName"] for job in stack.batch_jobs(run_id))
    assert names == [f"{run_id}-1", f"{run_id}-2", f"{run_id}-3"]
    row = stack.row(run_id)
    assert (row["attempt"], row["status"]) == (3, "STARTING")
    ticket = stack.table.attempt_ticket(run_id, 3)
    assert ticket is not None
    assert (ticket["task_token"], ticket["retry_count"]) == ("token-c", 4)


@pytest.mark.parametrize(
    ("newer_first", "outcomes"),
    [(True, [Outcome.SUBMITTED, Outcome.STALE]), (False, [Outcome.SUBMITTED, Outcome.DUPLICATE])],
)
def test_an_older_token_never_replaces_a_newer_one(stack: Stack, newer_first: bool, outcomes: list[Outcome]) -> None:
    """The send's response was lost and the state retried it: two messages for the same attempt,
    the retry's token the one that waits. Either order leaves that token in the ticket, one job."""
    run_id = stack.start("word-count")
    body = stack.message(run_id)
    older, newer = with_retry_count(body, 0, "token-a"), with_retry_count(body, 1, "token-b")
    order = [newer, older] if newer_first else [older, newer]
    assert [process_message(stack.submitter(), message, time_left()) for message in order] == outcomes
    ticket = stack.table.attempt_ticket(run_id, 1)
    assert ticket is not None
    assert (ticket["task_token"], ticket["retry_count"]) == ("token-b", 1)
    assert stack.row(run_id)["attempt"] == 1
    assert len(stack.batch_jobs(run_id)) == 1


def test_a_refused_request_ends_the_run_submit_failed_and_fails_the_task(stack: Stack) -> None:
    run_id = stack.start("word-count")
    body = json.loads(stack.message(run_id))
    body["request"]["params"]["jobDefinition"] = "arn:aws:batch:us-east-1:123456789012:job-definition/gone:1"
    message = json.dumps(body)
    assert process_message(stack.submitter(), message, time_left()) == Outcome.SUBMIT_FAILED
    row = stack.row(run_id)
    assert (row["status"], row["reason"], row["status_rank"]) == ("FAILED", "SubmitFailed", 30)
    assert row["attempts"]["1"]["status"] == "FAILED"
    assert row["attempts"]["1"]["status_reason"].startswith("ClientException")
    execution = stack.execution(run_id)
    assert (execution["status"], execution.get("error")) == ("FAILED", "Jobline.SubmitFailed")
    # A redelivery answers again (the first answer may have been lost): the token is spent, quietly.
    assert process_message(stack.submitter(), message, time_left()) == Outcome.ENDED
    assert stack.batch_jobs(run_id) == []


def test_a_throttled_submit_goes_back_and_is_submitted_later_never_failed(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local stack's SubmitJob quota (jobline_local.contracts.throttling) at 1 per second, below
    what the stack's rate allows (another tool in the account takes its share); the SDK's own
    retries off, so the throttle reaches the submitter."""
    monkeypatch.setenv("JOBLINE_QUOTA_SUBMITJOB", "1")
    stack._clients["batch"] = stack.session.client("batch", config=Config(retries={"total_max_attempts": 1}))
    first, second = stack.start("word-count"), stack.start("word-count")
    bodies = [stack.message(first), stack.message(second)]
    assert process_message(stack.submitter(), bodies[0], time_left()) == Outcome.SUBMITTED
    with pytest.raises(SubmitDeferred, match="TooManyRequestsException"):
        process_message(stack.submitter(), bodies[1], time_left())
    assert stack.row(second)["status"] == "STARTING"
    stack.clock.advance(60)
    for _ in range(50):  # the local quota refills in real time
        try:
            assert process_message(stack.submitter(), bodies[1], time_left()) == Outcome.SUBMITTED
            break
        except SubmitDeferred:
            stack.clock.advance(60)
            threading.Event().wait(0.1)
    assert [job["jobName"] for job in stack.batch_jobs(second)] == [f"{second}-1"]
    assert stack.row(second)["status"] == "STARTING"


def test_spent_submit_capacity_sends_the_message_back_without_a_claim(stack: Stack) -> None:
    run_id = stack.start("word-count")
    body = stack.message(run_id)
    schedule = quota.Schedule(1)
    taken = schedule.next_after(stack.clock())
    stack.clock.now = schedule.start(taken) - 0.5  # the next slot starts in half a second
    submitter = stack.submitter(submit_job_rate=1)
    assert stack.table.take_quota("SubmitJob", taken, 0)  # another submitter took it
    with pytest.raises(SubmitDeferred, match="no SubmitJob capacity"):
        process_message(submitter, body, time_left(1.0))  # the slot after starts in 1.6 s
    assert stack.row(run_id)["attempt"] == 0
    assert process_message(submitter, body, time_left()) == Outcome.SUBMITTED  # waits for that slot
    assert stack.clock() == pytest.approx(schedule.start(taken + 1))


def test_every_call_a_submit_makes_is_granted_by_the_submitter_s_policy(stack: Stack) -> None:
    """The calls counted as the submitter makes them (IAM's service prefix: the signing name), not
    as the template lists them: a call the policy lacks would be AccessDenied on AWS only."""
    from tests.unit.test_submit_template import _allowed

    made: set[str] = set()

    def record(model: Any, **_: Any) -> None:
        made.add(f"{model.service_model.signing_name}:{model.name}")

    run_id = stack.start("word-count")
    body = stack.message(run_id)
    for client in (stack.table._client, stack.client("batch"), stack.client("stepfunctions"), stack.client("sqs")):
        client.meta.events.register("before-call", record)
    assert process_message(stack.submitter(), body, time_left()) == Outcome.SUBMITTED
    assert {"dynamodb:PutItem", "dynamodb:UpdateItem", "batch:SubmitJob"} <= made
    assert made <= set(_allowed("SubmitterFunction"))
