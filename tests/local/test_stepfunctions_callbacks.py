"""Adaptations of moto's callback Tasks (adaptations.stepfunctions_callbacks) and of the engine's
clock (adaptations.stepfunctions_engine.adapt_engine_clock), on small machines shaped as jobline's
Attempt: `sqs:sendMessage.waitForTaskToken` to a moto queue, answered by SendTaskFailure /
SendTaskSuccess as the state change handler answers. Each test first shows moto's own behaviour
(its originals) still has the gap, then the adaptation closing it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from tests.local.moto_support import SFN, client, original, run_asl, wait_execution
from tests.waiting import wait_until

FAILED = "Jobline.NonZeroExitCode"


@pytest.fixture
def queue() -> Iterator[str]:
    with mock_aws(config=SFN):
        yield client("sqs").create_queue(QueueName="submit")["QueueUrl"]


def attempt(queue_url: str, retry: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {
            "QueueUrl": queue_url,
            "MessageBody": {"retry_count.$": "$$.State.RetryCount", "token.$": "$$.Task.Token"},
        },
        "TimeoutSeconds": 60,
        "End": True,
    }
    if retry:
        state["Retry"] = retry
    return {"Attempt": state}


def retry(attempts: int, interval: int = 1, **more: Any) -> list[dict[str, Any]]:
    return [{"ErrorEquals": [FAILED], "IntervalSeconds": interval, "MaxAttempts": attempts, **more}]


def next_message(queue_url: str) -> dict[str, Any]:
    sqs = client("sqs")

    def receive() -> dict[str, Any] | None:
        messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return None
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
        return json.loads(messages[0]["Body"])

    return wait_until(receive, timeout=20, what="the attempt's message")


def refusal(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as refused:
        call(**kwargs)
    return refused.value.response["Error"]["Code"]


def history(arn: str) -> list[dict[str, Any]]:
    return client("stepfunctions").get_execution_history(executionArn=arn)["events"]


@pytest.fixture
def fast_clock(adapted: dict[str, Any]) -> list[float]:
    """The engine's waits on a clock 1,000 x faster; the delays moto computed, in order."""
    asked: list[float] = []

    def scale(seconds: float) -> float:
        asked.append(seconds)
        return seconds / 1000

    adapted["engine_seconds"] = scale
    return asked


def test_callback_token_per_try(monkeypatch: pytest.MonkeyPatch, queue: str, fast_clock: list[float]) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )

    sfn = client("stepfunctions")
    fail = {"error": FAILED, "cause": "exit code 1"}
    # moto's own: one token for every try, and the first try's failure replayed by the second.
    monkeypatch.setattr(StateTaskServiceCallback, "_eval_body", original(StateTaskServiceCallback, "_eval_body"))
    monkeypatch.setattr(StateTaskServiceCallback, "_evaluate_with_timeout", ExecutionState._evaluate_with_timeout)
    arn = run_asl(attempt(queue, retry(1)), "Attempt", wait=False)
    first = next_message(queue)
    sfn.send_task_failure(taskToken=first["token"], **fail)
    assert wait_execution(arn)["status"] == "FAILED", "moto now gives each try its own outcome"
    assert next_message(queue)["token"] == first["token"], "moto now gives each try its own token"
    monkeypatch.undo()

    arn = run_asl(attempt(queue, retry(2)), "Attempt", wait=False)
    tries = [next_message(queue)]
    sfn.send_task_failure(taskToken=tries[0]["token"], **fail)
    tries.append(next_message(queue))
    assert refusal(sfn.send_task_failure, taskToken=tries[0]["token"], **fail) == "TaskTimedOut"  # closed
    sfn.send_task_failure(taskToken=tries[1]["token"], **fail)
    tries.append(next_message(queue))
    sfn.send_task_success(taskToken=tries[2]["token"], output='{"ok": true}')
    described = wait_execution(arn)

    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"ok": True}
    assert [t["retry_count"] for t in tries] == [0, 1, 2]  # $$.State.RetryCount across tries
    assert len({t["token"] for t in tries}) == 3
    assert [f["cause"] for f in described["failures"]] == ["exit code 1"] * 2  # SendTaskFailure's cause kept
    for token in (t["token"] for t in tries):  # every try closed: a late answer is refused as AWS does
        assert refusal(sfn.send_task_success, taskToken=token, output="{}") == "TaskTimedOut"
    assert refusal(sfn.send_task_success, taskToken="not-a-token", output="{}") == "InvalidToken"
    assert [e["type"] for e in history(arn)].count("TaskSubmitted") == 3


def test_stop_ends_callback_wait(monkeypatch: pytest.MonkeyPatch, queue: str) -> None:
    from moto.stepfunctions.parser.asl.eval.environment import Environment

    sfn = client("stepfunctions")
    monkeypatch.setattr(Environment, "set_stop", original(Environment, "set_stop"))
    arn = run_asl(attempt(queue), "Attempt", wait=False)
    token = next_message(queue)["token"]
    sfn.stop_execution(executionArn=arn)
    time.sleep(1)
    assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING", "moto now aborts a waiting task"
    sfn.send_task_failure(taskToken=token, error=FAILED)  # moto's: the stopped execution ends FAILED
    assert wait_execution(arn)["status"] == "FAILED"
    monkeypatch.undo()

    arn = run_asl(attempt(queue, retry(2)), "Attempt", wait=False)
    token = next_message(queue)["token"]
    sfn.stop_execution(executionArn=arn, error="Jobline.Stopped", cause="stopped by a user")
    described = wait_execution(arn, timeout=5)
    assert described["status"] == "ABORTED"
    events = [e["type"] for e in history(arn)]
    assert events[-1] == "ExecutionAborted"
    assert not {"TaskFailed", "TaskTimedOut", "TaskSucceeded"} & set(events)
    assert refusal(sfn.send_task_success, taskToken=token, output="{}") == "TaskTimedOut"
    assert refusal(sfn.send_task_failure, taskToken=token, error=FAILED) == "TaskTimedOut"


def test_stop_ends_retry_wait(queue: str, adapted: dict[str, Any]) -> None:
    sfn = client("stepfunctions")
    arn = run_asl(attempt(queue, retry(2, interval=3600)), "Attempt", wait=False)
    sfn.send_task_failure(taskToken=next_message(queue)["token"], error=FAILED)
    wait_until(lambda: "TaskFailed" in [e["type"] for e in history(arn)], what="the first try's failure")
    sfn.stop_execution(executionArn=arn)
    assert wait_execution(arn, timeout=5)["status"] == "ABORTED"  # not after the hour's wait


def test_engine_clock(monkeypatch: pytest.MonkeyPatch, queue: str, fast_clock: list[float]) -> None:
    from moto.stepfunctions.parser.asl.component.common.retry.retrier_decl import RetrierDecl

    sfn = client("stepfunctions")
    # moto's own retrier sleeps real seconds: the local clock is never asked.
    monkeypatch.setattr(RetrierDecl, "_eval_body", original(RetrierDecl, "_eval_body"))
    arn = run_asl(attempt(queue, retry(1)), "Attempt", wait=False)
    sfn.send_task_failure(taskToken=next_message(queue)["token"], error=FAILED)
    sfn.send_task_success(taskToken=next_message(queue)["token"], output="{}")
    assert wait_execution(arn)["status"] == "SUCCEEDED"
    assert fast_clock == [], "moto's Retry now takes a clock"
    monkeypatch.undo()

    # IntervalSeconds x BackoffRate^n, capped by MaxDelaySeconds: 10, 20 → 15, 15 (a day at 1,000x
    # would be 86 s; these are 10-15 ms).
    capped = retry(3, interval=10, BackoffRate=2, MaxDelaySeconds=15)
    states = {"Hold": {"Type": "Wait", "Seconds": 30, "Next": "Attempt"}, **attempt(queue, capped)}
    arn = run_asl(states, "Hold", wait=False)
    for _ in range(3):
        sfn.send_task_failure(taskToken=next_message(queue)["token"], error=FAILED)
    sfn.send_task_success(taskToken=next_message(queue)["token"], output="{}")
    assert wait_execution(arn)["status"] == "SUCCEEDED"
    assert fast_clock == [30, 10, 15, 15]

    fast_clock.clear()
    jittered = retry(2, interval=10, BackoffRate=2, JitterStrategy="FULL")
    arn = run_asl(attempt(queue, jittered), "Attempt", wait=False)
    for _ in range(2):
        sfn.send_task_failure(taskToken=next_message(queue)["token"], error=FAILED)
    sfn.send_task_success(taskToken=next_message(queue)["token"], output="{}")
    assert wait_execution(arn)["status"] == "SUCCEEDED"
    assert len(fast_clock) == 2
    assert 0 <= fast_clock[0] <= 10  # FULL jitter draws in [0, delay]
    assert 0 <= fast_clock[1] <= 20


def test_callback_timeout_closes_the_token(queue: str, fast_clock: list[float]) -> None:
    """The guard: TimeoutSecondsPath ends a waiting try with States.Timeout; the retry's try has
    its own token, and the timed-out one is closed."""
    sfn = client("stepfunctions")
    states = attempt(queue, [{"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 1, "MaxAttempts": 1}])
    del states["Attempt"]["TimeoutSeconds"]
    states["Attempt"]["TimeoutSecondsPath"] = "$.guard"
    arn = run_asl(states, "Attempt", {"guard": 1}, wait=False)
    first = next_message(queue)  # not answered: the try times out
    second = next_message(queue)
    assert second["token"] != first["token"]
    assert second["retry_count"] == 1
    assert refusal(sfn.send_task_success, taskToken=first["token"], output="{}") == "TaskTimedOut"
    sfn.send_task_success(taskToken=second["token"], output='{"ok": 1}')
    described = wait_execution(arn)
    assert described["status"] == "SUCCEEDED"
    assert [e["type"] for e in history(arn)].count("TaskTimedOut") == 1


def test_concurrent_executions_of_one_callback_machine(queue: str, fast_clock: list[float]) -> None:
    """One definition (one cached program), several executions at once: each try's token answers
    its own execution only."""
    sfn = client("stepfunctions")
    role = client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    definition = json.dumps({"StartAt": "Attempt", "States": attempt(queue, retry(1))})
    machine = sfn.create_state_machine(name="shared", definition=definition, roleArn=role)["stateMachineArn"]
    arns = [sfn.start_execution(stateMachineArn=machine, name=f"run-{n}")["executionArn"] for n in range(3)]
    tokens = {next_message(queue)["token"] for _ in arns}
    assert len(tokens) == 3
    for token in tokens:  # every first try fails
        sfn.send_task_failure(taskToken=token, error=FAILED)
    retries = [next_message(queue) for _ in arns]
    assert {r["retry_count"] for r in retries} == {1}
    for n, r in enumerate(retries):
        sfn.send_task_success(taskToken=r["token"], output=json.dumps({"n": n}))
    outputs = sorted(json.loads(wait_execution(arn)["output"])["n"] for arn in arns)
    assert outputs == [0, 1, 2]
