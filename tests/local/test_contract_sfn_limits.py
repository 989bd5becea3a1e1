"""Step Functions' 256 KiB payload limit (execution input, task output handed back, state data)
and its 25,000-event execution history cap."""

from __future__ import annotations

import json
from typing import Any

import pytest
from boto3.session import Session

from jobline_local.contracts import sfn_history
from tests.local.conftest import client, refusal
from tests.waiting import wait_until

LIMIT = 262_144  # bytes, UTF-8 (Step Functions quotas: "Maximum input or output size ... 256 KiB")
ROLE = "arn:aws:iam::123456789012:role/sfn"


def machine(sfn: Any, states: dict[str, Any], start: str) -> str:
    definition = json.dumps({"StartAt": start, "States": states})
    return sfn.create_state_machine(name="m", definition=definition, roleArn=ROLE)["stateMachineArn"]


def finished(sfn: Any, arn: str) -> dict[str, Any]:
    return wait_until(
        lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d,
        timeout=30,
        what="the execution to end",
    )


def test_start_execution_refuses_input_over_256_kib_with_invalid_execution_input(aws: Session) -> None:
    sfn = client(aws, "stepfunctions")
    arn = machine(sfn, {"P": {"Type": "Pass", "End": True}}, "P")
    too_big = json.dumps({"data": "x" * LIMIT})
    error = refusal(sfn.start_execution, stateMachineArn=arn, name="big", input=too_big)
    assert (error["code"], error["status"]) == ("InvalidExecutionInput", 400)
    assert "'input'" in error["message"]
    assert "262144" in error["message"]
    fits = json.dumps({"data": "x" * (LIMIT - 20)})
    assert sfn.start_execution(stateMachineArn=arn, name="fits", input=fits)["executionArn"].endswith(":fits")


def test_send_task_success_refuses_output_over_256_kib_with_invalid_output(aws: Session) -> None:
    error = refusal(client(aws, "stepfunctions").send_task_success, taskToken="t", output="1" * (LIMIT + 1))
    assert (error["code"], error["status"]) == ("InvalidOutput", 400)
    assert "'output'" in error["message"]


def test_state_output_over_256_kib_fails_with_states_data_limit_exceeded(aws: Session) -> None:
    sfn = client(aws, "stepfunctions")
    double = {"Type": "Pass", "Parameters": {"a.$": "$.data", "b.$": "$.data"}, "End": True}
    arn = machine(sfn, {"Double": double}, "Double")
    execution = sfn.start_execution(stateMachineArn=arn, name="double", input=json.dumps({"data": "x" * 140_000}))
    ended = finished(sfn, execution["executionArn"])
    assert (ended["status"], ended["error"]) == ("FAILED", "States.DataLimitExceeded")


def test_an_execution_whose_history_reaches_the_cap_fails(aws: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sfn_history, "HISTORY_CAP", 40)  # 25,000 events take too long to make here
    sfn = client(aws, "stepfunctions")
    loop = {"Type": "Pass", "Next": "Again"}
    again = {
        "Type": "Choice",
        "Choices": [{"Variable": "$.stop", "BooleanEquals": True, "Next": "Done"}],
        "Default": "Loop",
    }
    arn = machine(sfn, {"Loop": loop, "Again": again, "Done": {"Type": "Succeed"}}, "Loop")
    execution = sfn.start_execution(stateMachineArn=arn, name="loop", input=json.dumps({"stop": False}))
    ended = finished(sfn, execution["executionArn"])
    assert (ended["status"], ended["error"]) == ("FAILED", "States.Runtime")
    assert "reached the quota of 40 events" in ended["cause"]
    events = sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)["events"]
    assert len(events) <= 40
    assert events[-1]["type"] == "ExecutionFailed"


def test_an_execution_under_the_cap_runs_on(aws: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sfn_history, "HISTORY_CAP", 40)
    sfn = client(aws, "stepfunctions")
    arn = machine(sfn, {"P": {"Type": "Pass", "Next": "Done"}, "Done": {"Type": "Succeed"}}, "P")
    execution = sfn.start_execution(stateMachineArn=arn, name="short")
    assert finished(sfn, execution["executionArn"])["status"] == "SUCCEEDED"
