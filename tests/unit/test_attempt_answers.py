"""An attempt that ended answers the execution waiting on its task token: the decision (retry or
final) comes from the attempt's ticket, the answer names the error the state machine's Retry and
Catch match, a duplicate answers again, and an answer nothing waits for is no error. The run
table is moto's; the answers go through botocore's Stubber, which checks each request against
the Step Functions model."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber

from jobline.backends import Observation
from jobline.status import ATTEMPT_ERROR_FOR, Reason
from tests.aws_resources import REGION
from tests.unit.event_lab import Lab, lab, ticket  # noqa: F401  (the lab fixture)
from tests.unit.test_status import attempt_events, batch_event
from tests.unit.test_status_ties import observe, processing

TOKEN = "token-" + "t" * 200


@pytest.fixture
def sfn() -> Iterator[Stubber]:
    client = boto3.client("stepfunctions", region_name=REGION)
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def run_with_token(lab: Lab, max_attempts: int = 3, retry_on_timeout: bool = False) -> str:  # noqa: F811
    run = lab.new_run(max_attempts=max_attempts, retry_on_timeout=retry_on_timeout)
    for attempt in range(1, max_attempts + 1):
        lab.put_ticket(ticket(run, attempt, max_attempts, retry_on_timeout, task_token=f"{TOKEN}-{attempt}"))
    return run


def expect_failure(sfn: Stubber, attempt: int, error: str) -> None:
    sfn.add_response("send_task_failure", {}, {"taskToken": f"{TOKEN}-{attempt}", "error": error, "cause": ANY})


def test_the_error_names_are_the_state_machines(lab: Lab) -> None:  # noqa: F811
    assert ATTEMPT_ERROR_FOR == {
        Reason.NON_ZERO_EXIT_CODE: "Jobline.NonZeroExitCode",
        Reason.JOB_FAILED: "Jobline.JobFailed",
        Reason.TIMEOUT: "Jobline.Timeout",
        Reason.STOPPED_BY_USER: "Jobline.Stopped",
        Reason.SUBMIT_FAILED: "Jobline.SubmitFailed",
    }


def test_a_success_answers_task_success_and_ends_the_run(lab: Lab, sfn: Stubber) -> None:  # noqa: F811
    run = run_with_token(lab)
    sfn.add_response("send_task_success", {}, {"taskToken": f"{TOKEN}-1", "output": ANY})
    outcomes = [lab.deliver(run, seen, sfn.client) for seen in attempt_events(1, "SUCCEEDED")]
    assert [o.answered for o in outcomes] == [False] * 5 + [True]
    assert str(outcomes[-1]) == "applied: RUNNING -> SUCCEEDED (execution answered)"
    assert lab.row(run)["status"] == "SUCCEEDED"


def test_a_failure_with_attempts_left_retries_and_the_last_one_ends_the_run(lab: Lab, sfn: Stubber) -> None:  # noqa: F811
    run = run_with_token(lab, max_attempts=2)
    expect_failure(sfn, 1, "Jobline.NonZeroExitCode")
    row = lab.deliver_all(run, attempt_events(1, "FAILED"), sfn.client)
    assert (row["status"], row["reason"]) == ("RUNNING", "Retrying: attempt 1 NonZeroExitCode")
    expect_failure(sfn, 2, "Jobline.NonZeroExitCode")
    row = lab.deliver_all(run, attempt_events(2, "FAILED"), sfn.client)
    assert (row["status"], row["reason"], row["attempt"]) == ("FAILED", "NonZeroExitCode", 2)


def test_a_job_that_failed_without_an_exit_code_is_job_failed(lab: Lab, sfn: Stubber) -> None:  # noqa: F811
    run = run_with_token(lab, max_attempts=1)
    failed = batch_event(1, "FAILED", 5)
    failed.observed.update(reason=Reason.JOB_FAILED.value, exit_code=None)
    expect_failure(sfn, 1, "Jobline.JobFailed")
    assert lab.deliver(run, failed, sfn.client).answered
    assert (lab.row(run)["status"], lab.row(run)["reason"]) == ("FAILED", "JobFailed")


@pytest.mark.parametrize(("retry_on_timeout", "status"), [(True, "RUNNING"), (False, "TIMEOUT")])
def test_a_timeout_answers_timeout_and_retries_only_if_the_ticket_says_so(
    lab: Lab,  # noqa: F811
    sfn: Stubber,
    retry_on_timeout: bool,
    status: str,
) -> None:
    run = run_with_token(lab, max_attempts=3, retry_on_timeout=retry_on_timeout)
    expect_failure(sfn, 1, "Jobline.Timeout")
    assert lab.deliver(run, batch_event(1, "FAILED", 5, outcome="timeout"), sfn.client).answered
    assert lab.row(run)["status"] == status


def test_a_stopped_job_answers_stopped_and_ends_the_run(lab: Lab, sfn: Stubber) -> None:  # noqa: F811
    run = run_with_token(lab)
    expect_failure(sfn, 1, "Jobline.Stopped")
    assert lab.deliver(run, observe(processing(1, "Stopped"), None), sfn.client).answered
    assert (lab.row(run)["status"], lab.row(run)["reason"]) == ("STOPPED", "Stopped by user")


def test_a_duplicate_terminal_event_answers_again_and_nothing_waiting_is_no_error(lab: Lab, sfn: Stubber) -> None:  # noqa: F811
    run = run_with_token(lab)
    done = batch_event(1, "SUCCEEDED", 5)
    sfn.add_response("send_task_success", {}, {"taskToken": f"{TOKEN}-1", "output": ANY})
    for code in ("InvalidToken", "TaskTimedOut", "TaskDoesNotExist"):
        sfn.add_client_error("send_task_success", service_error_code=code, http_status_code=400)
    outcomes = [lab.deliver(run, done, sfn.client) for _ in range(4)]
    assert [str(o) for o in outcomes] == [
        "applied: PENDING -> SUCCEEDED (execution answered)",
        *["unchanged: duplicate or stale event"] * 3,
    ]
    assert outcomes[1].answered is False


def test_an_answer_refused_for_a_passing_reason_is_raised_for_redelivery(lab: Lab, sfn: Stubber) -> None:  # noqa: F811
    run = run_with_token(lab)
    sfn.add_client_error("send_task_success", service_error_code="ThrottlingException", http_status_code=400)
    with pytest.raises(ClientError, match="ThrottlingException"):
        lab.deliver(run, batch_event(1, "SUCCEEDED", 5), sfn.client)
    assert lab.row(run)["status"] == "SUCCEEDED"  # written first: the redelivery only answers
    sfn.add_response("send_task_success", {}, {"taskToken": f"{TOKEN}-1", "output": ANY})
    assert lab.deliver(run, batch_event(1, "SUCCEEDED", 5), sfn.client).answered


def test_an_attempt_the_run_has_gone_past_is_not_answered_again(lab: Lab, sfn: Stubber) -> None:  # noqa: F811
    run = run_with_token(lab, max_attempts=2)
    expect_failure(sfn, 1, "Jobline.NonZeroExitCode")
    lab.deliver(run, batch_event(1, "FAILED", 5), sfn.client)
    lab.deliver(run, batch_event(2, "RUNNING", 1), sfn.client)
    outcome = lab.deliver(run, batch_event(1, "FAILED", 5), sfn.client)  # no answer expected by the stubber
    assert (outcome.effect, outcome.answered) == ("unchanged", False)


def claim(lab: Lab, run: str, attempt: int) -> bool:  # noqa: F811
    """The submitter's claim (PHASE3.md "Claim"), as the submit helper writes it."""
    values = {":n": {"N": str(attempt)}, ":prev": {"N": str(attempt - 1)}, ":starting": {"S": "STARTING"}}
    values |= {":reason": {"S": "In queue"}, ":rank": {"N": "10"}, ":terminal": {"N": "30"}, ":zero": {"N": "0"}}
    values |= {":failed": {"S": "FAILED"}, ":timeout": {"S": "TIMEOUT"}}
    values[":record"] = {"M": {"status": {"S": "STARTING"}, "reason": {"S": "In queue"}, "submitted_at": {"S": "t0"}}}
    try:
        lab.client.update_item(
            TableName="runs",
            Key={"pk": {"S": f"RUN#{run}"}},
            UpdateExpression="SET attempt = :n, #s = :starting, reason = :reason, status_rank = :rank, "
            "attempts.#n = :record",
            ConditionExpression="attempt = :prev AND status_rank < :terminal AND "
            "(attempt = :zero OR attempts.#p.#s IN (:failed, :timeout))",
            ExpressionAttributeNames={"#s": "status", "#n": str(attempt), "#p": str(attempt - 1)},
            ExpressionAttributeValues=values,
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return False
    return True


def test_events_after_the_claim_keep_what_the_claim_wrote(lab: Lab) -> None:  # noqa: F811
    run = lab.new_run()
    assert claim(lab, run, 1)
    row = lab.deliver_all(run, attempt_events(1, "RUNNING")[:-1])
    assert (row["status"], row["attempt"]) == ("RUNNING", 1)
    assert row["attempts"]["1"]["submitted_at"] == "t0"
    assert row["attempts"]["1"]["backend_status"] == "RUNNING"


@pytest.mark.parametrize("first", ["RUNNING", "FAILED"])
def test_an_event_before_the_claim_makes_its_attempt_record_and_the_claim_then_stands_down(
    lab: Lab,  # noqa: F811
    first: str,
) -> None:
    run = lab.new_run(max_attempts=2)
    row = lab.deliver_all(run, [batch_event(1, first, 4)])
    assert (row["attempt"], row["attempts"]["1"]["backend_status"], row["attempts"]["1"]["backend_job_id"]) == (
        1,
        first,
        "job-1",
    )
    assert not claim(lab, run, 1)  # the row is at attempt 1 already: the submitter finds job-1, submits nothing
    assert lab.row(run)["attempts"]["1"]["backend_status"] == first  # not overwritten
    # The next attempt's claim holds once attempt 1 failed, and its events merge into that record.
    lab.deliver_all(run, [batch_event(1, "FAILED", 5)])
    assert claim(lab, run, 2)
    row = lab.deliver_all(run, [batch_event(2, "RUNNING", 1)])
    assert (row["status"], row["attempt"], row["attempts"]["2"]["submitted_at"]) == ("RUNNING", 2, "t0")
    assert row["attempts"]["1"]["status"] == "FAILED"


def test_an_observation_for_a_missing_run_is_ignored(lab: Lab) -> None:  # noqa: F811
    seen = Observation("x", 1, batch_event(1, "RUNNING", 1).observed)
    assert str(lab.deliver("word-count-eeeeeeeeeeeeeeeeeeee", seen)) == "ignored: no such run"
