"""The real run.asl.json on moto's engine: attempts, retries, timeouts, concurrency, idempotency."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from jobline import triggers
from tests.aws_resources import job_spec
from tests.integration.conftest import (
    BatchScript,
    execution_input,
    make_deps,
    wait_for_execution,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
S3_DELIVERY = json.loads((Path(__file__).parents[2] / "events" / "s3-object-created.json").read_text())


def s3_request(deps: Any, key: str = "incoming/orders.csv", sequencer: str = "00617F08299329D189") -> Any:
    delivery = copy.deepcopy(S3_DELIVERY) | {"job": deps.catalog.jobs[0].name}  # the rule of the test's job
    delivery["event"]["detail"]["object"].update(key=key, sequencer=sequencer)
    (request,) = triggers.from_s3(delivery, deps.catalog)
    return request


def run(stack: dict[str, Any], deps: Any, request: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    started = deps.starter.start(request)
    execution = wait_for_execution(stack, started.run_id)
    return execution, deps.table.get_run(started.run_id)


def test_a_dropped_file_runs_once_and_succeeds(stack: dict[str, Any], batch_script: BatchScript) -> None:
    deps = make_deps(stack, [job_spec()])
    request = s3_request(deps)
    execution, row = run(stack, deps, request)

    assert execution["status"] == "SUCCEEDED"
    assert (row["status"], row["reason"], row["attempt"]) == ("SUCCEEDED", "Completed", 1)
    assert row["ended_at"] >= row["created_at"]
    assert row["execution_arn"] == execution["executionArn"]
    (submitted,) = batch_script.submitted
    assert submitted["name"] == f"{request.run_id}-1"
    assert submitted["tags"]["jobline:run-id"] == request.run_id
    env = {e["name"]: e["value"] for e in submitted["overrides"]["environment"]}
    assert env["JOBLINE_ATTEMPT"] == "1"
    assert env["JOBLINE_MAX_ATTEMPTS"] == "1"
    assert env["JOBLINE_RUN_ID"] == request.run_id
    assert json.loads(env["JOBLINE_TRIGGER_EVENT"])["detail"]["object"]["key"] == "incoming/orders.csv"
    assert env["JOBLINE_ARG_OUTPUT_PREFIX"] == "results/"
    assert submitted["overrides"]["command"] == ["python", "-c", "print(1)"]


def test_a_failed_attempt_is_retried_by_the_jobs_strategy(stack: dict[str, Any], batch_script: BatchScript) -> None:
    deps = make_deps(stack, [job_spec(retry={"attempts": 3, "interval_seconds": 1, "backoff_rate": 2})])
    batch_script.outcomes = {1: "exit1", 2: "succeed"}
    execution, row = run(stack, deps, s3_request(deps))

    assert execution["status"] == "SUCCEEDED"
    assert (row["status"], row["attempt"]) == ("SUCCEEDED", 2)
    assert [s["tags"]["jobline:attempt"] for s in batch_script.submitted] == ["1", "2"]
    env = {e["name"]: e["value"] for e in batch_script.submitted[1]["overrides"]["environment"]}
    assert env["JOBLINE_ATTEMPT"] == "2"


def test_attempts_exhausted_end_failed_with_reason(stack: dict[str, Any], batch_script: BatchScript) -> None:
    deps = make_deps(stack, [job_spec(retry={"attempts": 2, "interval_seconds": 0})])
    batch_script.outcomes = {1: "exit1", 2: "exit1"}
    execution, row = run(stack, deps, s3_request(deps))

    assert execution["status"] == "FAILED"
    assert (row["status"], row["reason"], row["attempt"]) == ("FAILED", "NonZeroExitCode", 2)
    assert len(batch_script.submitted) == 2


def test_an_overrun_ends_timeout_without_retry_unless_asked(stack: dict[str, Any], batch_script: BatchScript) -> None:
    deps = make_deps(stack, [job_spec(retry={"attempts": 3, "interval_seconds": 0, "retry_on_timeout": False})])
    batch_script.outcomes = {1: "timeout"}
    _, row = run(stack, deps, s3_request(deps))

    assert (row["status"], row["reason"], row["attempt"]) == ("TIMEOUT", "Timeout", 1)
    assert len(batch_script.submitted) == 1


def test_retry_on_timeout_retries(stack: dict[str, Any], batch_script: BatchScript) -> None:
    deps = make_deps(stack, [job_spec(retry={"attempts": 2, "interval_seconds": 0, "retry_on_timeout": True})])
    batch_script.outcomes = {1: "timeout", 2: "succeed"}
    _, row = run(stack, deps, s3_request(deps))

    assert (row["status"], row["attempt"]) == ("SUCCEEDED", 2)


def test_a_duplicate_trigger_makes_no_second_row_or_execution(stack: dict[str, Any], batch_script: BatchScript) -> None:
    deps = make_deps(stack, [job_spec()])
    first = deps.starter.start(s3_request(deps))
    wait_for_execution(stack, first.run_id)
    again = deps.starter.start(s3_request(deps))
    other = deps.starter.start(s3_request(deps, sequencer="00617F0829932999FF"))

    assert (first.created, again.created, other.created) == (True, False, True)
    assert again.run_id == first.run_id != other.run_id
    wait_for_execution(stack, other.run_id)
    sfn = stack["session"].client("stepfunctions")
    names = [e["name"] for e in sfn.list_executions(stateMachineArn=stack["settings"].state_machine_arn)["executions"]]
    assert sorted(names) == sorted([first.run_id, other.run_id])
    assert len(batch_script.submitted) == 2


def test_the_retry_loop_uses_catalog_delays(stack: dict[str, Any]) -> None:
    deps = make_deps(stack, [job_spec(retry={"attempts": 4, "interval_seconds": 10, "backoff_rate": 3})])
    request = s3_request(deps)
    deps.starter.start(request)
    assert execution_input(stack, request.run_id)["retry_delays"] == [10, 30, 90, 0]


def test_a_job_waits_for_a_concurrency_slot(stack: dict[str, Any], batch_script: BatchScript) -> None:
    deps = make_deps(stack, [job_spec(max_concurrent_runs=1)])
    ddb = stack["session"].client("dynamodb")
    slot = {"pk": {"S": "SLOT#word-count"}}
    ddb.put_item(TableName="runs", Item={**slot, "holders": {"SS": ["word-count-another-run"]}})
    started = deps.starter.start(s3_request(deps))

    waiting = wait_until(
        lambda: (row := deps.table.get_run(started.run_id))["reason"] == "Waiting for a concurrency slot" and row,
        what="the run to wait for a slot",
    )
    assert waiting["status"] == "PENDING"
    assert batch_script.submitted == []

    ddb.update_item(
        TableName="runs",
        Key=slot,
        UpdateExpression="DELETE holders :h",
        ExpressionAttributeValues={":h": {"SS": ["word-count-another-run"]}},
    )
    execution = wait_for_execution(stack, started.run_id, timeout=120)
    assert execution["status"] == "SUCCEEDED"
    assert "holders" not in ddb.get_item(TableName="runs", Key=slot)["Item"]


def test_a_large_trigger_event_travels_as_an_s3_reference(stack: dict[str, Any], batch_script: BatchScript) -> None:
    deps = make_deps(stack, [job_spec()])
    small = s3_request(deps)  # S3 keys are at most 1,024 bytes: the event grows elsewhere
    event = {**small.trigger.event, "padding": "x" * 7000}
    request = small.model_copy(update={"trigger": small.trigger.model_copy(update={"event": event})})
    run(stack, deps, request)

    env = {e["name"]: e["value"] for e in batch_script.submitted[0]["overrides"]["environment"]}
    assert "JOBLINE_TRIGGER_EVENT" not in env
    uri = env["JOBLINE_TRIGGER_EVENT_S3_URI"]
    assert uri.startswith(f"s3://run-data/trigger-events/{request.run_id}/")  # content-addressed
    assert uri == deps.table.get_run_data(request.run_id)["event_s3_uri"]
    body = stack["session"].client("s3").get_object(Bucket="run-data", Key=uri.split("/", 3)[3])["Body"].read()
    assert json.loads(body) == request.trigger.event


def test_a_run_stopped_before_its_execution_began_submits_nothing(
    stack: dict[str, Any], batch_script: BatchScript
) -> None:
    from jobline.runs import execution_input as build_input
    from jobline.runs import new_row
    from jobline.status import stop

    deps = make_deps(stack, [job_spec()])
    request = s3_request(deps)
    deps.table.create_run(new_row(request, stack["settings"], "2026-11-21T00:00:00.000Z"))
    deps.table.update_run(request.run_id, lambda row: stop(row, "2026-11-21T00:00:01.000Z"))

    assert deps.starter.start(request).created is False  # the trigger arrives: the run has ended, nothing starts
    sfn = stack["session"].client("stepfunctions")
    assert sfn.list_executions(stateMachineArn=stack["settings"].state_machine_arn)["executions"] == []

    # An execution that started anyway (a race with the stop) submits nothing either.
    payload = build_input(request, {"output_prefix": "results/"}, {}, stack["settings"])
    sfn.start_execution(
        stateMachineArn=stack["settings"].state_machine_arn, name=request.run_id, input=json.dumps(payload)
    )
    execution = wait_for_execution(stack, request.run_id)

    assert execution["status"] == "FAILED"  # the run did not succeed: it was stopped
    assert batch_script.submitted == []
    row = deps.table.get_run(request.run_id)
    assert (row["status"], row["reason"]) == ("STOPPED", "Stopped by user")
    slot = stack["session"].client("dynamodb").get_item(TableName="runs", Key={"pk": {"S": "SLOT#word-count"}})
    assert "holders" not in slot.get("Item", {})
