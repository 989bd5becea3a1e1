"""The generated run state machines agree with the catalog and with the error names the state
change handler answers attempts with (jobline.status.AttemptError): every policy's Retry is the
catalog's strategy, every Catch leads where the run's rules say, and no state is unreachable."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from jobline.catalog import Catalog, Job, load_catalog, parse_catalog
from jobline.settings import PACKAGED_CATALOG
from jobline.status import ATTEMPT_ERRORS, RETRIED_ATTEMPT_ERRORS, AttemptError
from jobline_tools import run_machines
from tests.aws_resources import job_spec
from tests.cfn import ROOT, STATEMACHINES

CATALOGS = [PACKAGED_CATALOG, ROOT / "examples" / "demo-jobs.yaml"]
# Policies beyond the shipped catalogs: every combination the retrier's shape depends on.
VARIED = parse_catalog(
    {
        "jobs": [
            job_spec("one-try", retry={"attempts": 1, "interval_seconds": 1}),
            job_spec("fractional", retry={"attempts": 4, "interval_seconds": 15, "backoff_rate": 1.5}),
            job_spec("timeouts", retry={"attempts": 3, "interval_seconds": 5, "retry_on_timeout": True}),
            job_spec("limited", max_concurrent_runs=3, retry={"attempts": 2, "interval_seconds": 60}),
        ]
    }
)


def _jobs() -> list[Job]:
    catalogs: list[Catalog] = [*(load_catalog(path) for path in CATALOGS), VARIED]
    return [job for catalog in catalogs for job in run_machines.policies(catalog).values()]


JOBS = {job.policy_id: job for job in _jobs()}


@pytest.fixture(params=sorted(JOBS))
def job(request: pytest.FixtureRequest) -> Job:
    return JOBS[request.param]


def _attempt(job: Job) -> dict[str, Any]:
    return dict(run_machines.definition(job)["States"]["Attempt"])


def test_the_shipped_definitions_are_what_the_catalog_renders() -> None:
    for policy, job in run_machines.policies(load_catalog(PACKAGED_CATALOG)).items():
        text = (STATEMACHINES / run_machines.file_name(policy)).read_text()
        assert text == run_machines.definition_text(job)
        assert json.loads(text)["States"]["Attempt"]["Retry"] == _attempt(job)["Retry"]


def test_the_attempt_retrier_is_the_jobs_retry_strategy(job: Job) -> None:
    retry = job.retry
    retriers = _attempt(job)["Retry"]
    if retry.attempts == 1:
        assert all(not set(r["ErrorEquals"]) & set(ATTEMPT_ERRORS) for r in retriers)
        return
    first = retriers[0]
    retried = {*RETRIED_ATTEMPT_ERRORS, *([AttemptError.TIMEOUT] if retry.retry_on_timeout else [])}
    assert set(first["ErrorEquals"]) == retried
    assert first["IntervalSeconds"] == retry.interval_seconds
    assert first["BackoffRate"] == retry.backoff_rate
    assert first["MaxDelaySeconds"] == retry.max_delay_seconds
    assert first["MaxAttempts"] == retry.attempts - 1
    assert first["JitterStrategy"] == "NONE"  # so the delays are exactly RetryStrategy.delays()
    assert not any(set(r["ErrorEquals"]) & set(ATTEMPT_ERRORS) for r in retriers[1:])


def test_a_callback_tasks_lost_response_is_retried(job: Job) -> None:
    """A callback Task's own call that ran but got no answer fails as the service's
    SdkClientException (AWS's name for the SDK's client exception): a retrier of each callback
    Task matches it, so the call is made again instead of the run ending InternalError."""
    states = run_machines.definition(job)["States"]
    lost = {"Attempt": "SQS.SdkClientException", "WaitForSlot": "DynamoDb.SdkClientException"}
    for name, error in lost.items():
        if name in states:
            assert any(error in r["ErrorEquals"] for r in states[name]["Retry"]), name


def test_every_attempt_error_that_is_not_retried_ends_the_run(job: Job) -> None:
    """Catch: each error the handler sends goes to RunFailed (its terminal event wrote the row);
    only the guard and the engine's own errors are written by the execution."""
    catches = _attempt(job)["Catch"]
    assert [c["ErrorEquals"] for c in catches] == [list(ATTEMPT_ERRORS), ["States.Timeout"], ["States.ALL"]]
    assert [c["Next"] for c in catches] == ["RunFailed", "RecordTimeout", "RecordFailure"]
    assert len(set(ATTEMPT_ERRORS)) == len(ATTEMPT_ERRORS) == 5
    assert all(str(error).startswith("Jobline.") for error in ATTEMPT_ERRORS)


def test_the_attempt_message_is_the_submitters_contract(job: Job) -> None:
    attempt = _attempt(job)
    assert attempt["Resource"] == "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
    assert attempt["Parameters"]["QueueUrl.$"] == "$.submit_queue_url"
    assert attempt["Parameters"]["MessageBody"] == {
        "run_id.$": "$.run_id",
        "job.$": "$.job",
        "retry_count.$": "$$.State.RetryCount",
        "token.$": "$$.Task.Token",
        "request.$": "$.request",
    }
    assert attempt["TimeoutSecondsPath"] == "$.guard_timeout_seconds"
    assert attempt["ResultPath"] is None
    assert attempt["End"] is True  # a first-attempt success is one billed transition


def _reachable(definition: dict[str, Any]) -> set[str]:
    seen, todo = set(), [definition["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        state = definition["States"][name]
        todo += [state["Next"]] if "Next" in state else []
        todo += [c["Next"] for c in state.get("Catch", [])]
    return seen


def test_slot_states_exist_exactly_when_the_job_has_a_limit_and_every_state_is_reached(job: Job) -> None:
    definition = run_machines.definition(job)
    slots = {"AcquireSlot", "OpenSlot", "AcquireOpenedSlot", "WaitForSlot"}
    limited = job.max_concurrent_runs is not None
    assert (slots <= set(definition["States"])) is limited
    assert limited or not slots & set(definition["States"])
    assert definition["StartAt"] == ("AcquireSlot" if limited else "Attempt")
    assert _reachable(definition) == set(definition["States"])


def test_fail_states_raise_no_reserved_error_name(job: Job) -> None:
    """A Fail state cannot raise States.* (moto refuses at run time): the execution's own ends
    carry jobline's names, the attempt's failure its own error."""
    fails = {n: s for n, s in run_machines.definition(job)["States"].items() if s["Type"] == "Fail"}
    assert fails["RunFailed"] == {"Type": "Fail", "ErrorPath": "$.error.Error"}
    assert fails["RunTimedOut"]["Error"] == run_machines.GUARD_TIMEOUT_ERROR
    assert fails["RunBroke"]["Error"] == run_machines.INTERNAL_ERROR
    assert not any(str(s.get("Error", "")).startswith("States.") for s in fails.values())


def test_a_machine_name_fits_step_functions_limit_with_a_35_character_stack_name(job: Job) -> None:
    name = run_machines.machine_name(job.policy_id).replace("${AWS::StackName}", "s" * 35)
    assert len(name) <= 80
    assert set(job.policy_id) <= set("abcdefghijklmnopqrstuvwxyz0123456789-_")


def test_jobs_with_one_policy_share_one_machine() -> None:
    twins = parse_catalog({"jobs": [job_spec("first"), job_spec("second")]})
    assert list(run_machines.policies(twins)) == [twins.jobs[0].policy_id]


def test_every_definition_is_one_step_functions_accepts(job: Job) -> None:
    """CreateStateMachine validates the definition (moto's engine parses it as AWS's does)."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        definition = run_machines.definition_text(job).replace("${RunTableName}", "runs")
        role = "arn:aws:iam::123456789012:role/run-machines"
        sfn.create_state_machine(name=run_machines.file_name(job.policy_id)[:-9], definition=definition, roleArn=role)
        assert [m["name"] for m in sfn.list_state_machines()["stateMachines"]] == [f"run-{job.policy_id}"]


def test_step_functions_refuses_a_retry_interval_of_zero() -> None:
    """Why the catalog refuses it, and proof that the test above is one moto can fail."""
    job = VARIED.jobs[1]
    definition = run_machines.definition(job)
    definition["States"]["Attempt"]["Retry"][0]["IntervalSeconds"] = 0
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        # AWS answers InvalidDefinition; moto 5.2.5 refuses with an empty error code.
        with pytest.raises(ClientError, match="IntervalSeconds value MUST be a positive integer"):
            sfn.create_state_machine(
                name="zero", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/run-machines"
            )
