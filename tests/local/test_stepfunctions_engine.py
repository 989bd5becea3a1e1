"""Adaptations of moto's Step Functions engine (adaptations.stepfunctions_engine). Each test checks
that the pinned moto still behaves as the adaptation assumes (through moto's original, kept in
`adaptations.originals`), and that the adaptation closes the gap."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest
from moto import mock_aws

from tests.aws_resources import REGION
from tests.local.moto_support import (
    GLUE_SYNC,
    SFN,
    client,
    make_glue_job,
    original,
    run_asl,
    wait_execution,
    wait_status,
)
from tests.waiting import wait_until

ASL = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})


def test_asl_parse_cache() -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException

    pristine = original(AmazonStateLanguageParser, "parse")
    assert pristine(ASL)[1] is not pristine(ASL)[1], "moto now keeps parse trees itself"

    (first, tree), (second, same_tree) = AmazonStateLanguageParser.parse(ASL), AmazonStateLanguageParser.parse(ASL)
    assert pristine(ASL)[0] is not pristine(ASL)[0], "moto now keeps programs itself"
    assert tree is same_tree
    assert first is second  # the program too: executions keep their state in their own Environment
    assert type(first) is type(pristine(ASL)[0])
    with pytest.raises(ASLParserException):
        AmazonStateLanguageParser.parse('{"StartAt": ')


def test_asl_program_shared_by_executions() -> None:
    """Two executions of one definition at once, each with its own input, retries and answers."""
    states = {
        "Try": {
            "Type": "Pass",
            "Parameters": {"n.$": "$.n", "name.$": "$$.Execution.Name"},
            "ResultPath": "$.seen",
            "Next": "Hold",
        },
        "Hold": {"Type": "Wait", "SecondsPath": "$.wait", "End": True},
    }
    with mock_aws(config=SFN):
        sfn = client("stepfunctions")
        role = client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        machine = sfn.create_state_machine(
            name="shared", definition=json.dumps({"StartAt": "Try", "States": states}), roleArn=role
        )
        arns = [
            sfn.start_execution(
                stateMachineArn=machine["stateMachineArn"], name=f"e{n}", input=json.dumps({"n": n, "wait": 1 - n})
            )["executionArn"]
            for n in (0, 1)
        ]
        outputs = [json.loads(wait_status(sfn, arn)["output"]) for arn in arns]
    assert [o["seen"] for o in outputs] == [{"n": 0, "name": "e0"}, {"n": 1, "name": "e1"}]


def test_json_path_cache() -> None:
    from moto.stepfunctions.parser.asl.utils import json_path

    pristine = original(json_path, "parse")
    assert pristine("$.a") is not pristine("$.a"), "moto now keeps parsed paths itself"
    assert json_path.parse("$.a.b") is json_path.parse("$.a.b")
    assert json_path.extract_json("$.a.b", {"a": {"b": [1]}}) == [1]


def test_engine_client_cache() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.credentials import StateCredentials
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_dynamodb
    from moto.stepfunctions.parser.asl.utils import boto_client

    pristine = original(boto_client, "boto_client_for")
    assert pristine(region=REGION, service="dynamodb") is not pristine(region=REGION, service="dynamodb")
    adapted = state_task_service_dynamodb.boto_client_for
    assert adapted is boto_client.boto_client_for
    assert adapted(region=REGION, service="dynamodb") is adapted(region=REGION, service="dynamodb")
    assert adapted(region=REGION, service="dynamodb") is not adapted(region=REGION, service="batch")
    # Every task passes its credentials (its role), which moto's clients never use.
    role = StateCredentials(role_arn="arn:aws:iam::123456789012:role/sfn")
    assert adapted(region=REGION, service="dynamodb", state_credentials=role) is adapted(
        region=REGION, service="dynamodb"
    )
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        role = client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        client("dynamodb").create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        )
        asl = {
            "StartAt": "Put",
            "States": {
                "Put": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::dynamodb:putItem",
                    "Parameters": {"TableName": "t", "Item": {"pk": {"S.$": "$$.Execution.Name"}}},
                    "End": True,
                }
            },
        }
        sfn = client("stepfunctions")
        machine = sfn.create_state_machine(name="m", definition=json.dumps(asl), roleArn=role)["stateMachineArn"]
        for name in ("e1", "e2"):
            execution = sfn.start_execution(stateMachineArn=machine, name=name)["executionArn"]
            assert wait_status(sfn, execution)["status"] == "SUCCEEDED"
        assert client("dynamodb").scan(TableName="t")["Count"] == 2


def test_keyword_path_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    from jobline_local.adaptations.stepfunctions_engine import forget_parsed

    states = {
        "P": {
            "Type": "Pass",
            "Parameters": {
                "RoleArn.$": "$.role",
                "Formatted.$": "States.Format('{}-1', $.role)",
                "Execution.$": "$$.Execution.Name",
            },
            "End": True,
        }
    }
    with mock_aws(config=SFN):
        monkeypatch.setattr(
            Preprocessor, "visitPayload_binding_value", original(Preprocessor, "visitPayload_binding_value")
        )
        forget_parsed()  # programs are built by the preprocessor: rebuild them with moto's
        pristine = json.loads(run_asl(states, "P", {"role": "r"})["output"])
        assert pristine["RoleArn.$"] == "$.role", "moto now reads RoleArn.$ as a path"
        monkeypatch.undo()
        forget_parsed()
        adapted = json.loads(run_asl(states, "P", {"role": "r"})["output"])
        assert adapted == {"RoleArn": "r", "Formatted": "r-1", "Execution": "e"}


def test_sync_without_callback(monkeypatch: pytest.MonkeyPatch, adapted: dict[str, Any]) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )

    with mock_aws(config=SFN):
        make_glue_job(max_runs=5)
        monkeypatch.setattr(
            StateTaskServiceCallback,
            "_eval_integration_pattern",
            original(StateTaskServiceCallback, "_eval_integration_pattern"),
        )
        pristine = run_asl(GLUE_SYNC, "T")
        assert pristine["status"] == "FAILED"
        assert "interrupt_all" in pristine["failures"][0]["cause"], "moto's .sync without a callback changed"
        monkeypatch.undo()
        assert run_asl(GLUE_SYNC, "T")["status"] == "SUCCEEDED"

        # A stopped execution stops the job it was waiting for (here: a held Glue run).
        held: list[Any] = []
        adapted["glue_job_run"] = lambda job, run: held.append(run)
        arn = run_asl(GLUE_SYNC, "T", wait=False)
        wait_until(lambda: held)
        client("stepfunctions").stop_execution(executionArn=arn)
        wait_until(lambda: held[0].status == "STOPPING")


def test_sync_poll_backoff(monkeypatch: pytest.MonkeyPatch, adapted: dict[str, Any]) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_callback

    from jobline_local.adaptations import stepfunctions_engine

    pristine = original(state_task_service_callback.StateTaskServiceCallback, "_eval_sync")
    assert "time.sleep(_DELAY_SECONDS_SYNC_CONDITION_CHECK)" in inspect.getsource(pristine), "moto's .sync poll changed"
    assert state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK == 0.5

    waits: list[float] = []
    real_wait = stepfunctions_engine._wait
    monkeypatch.setattr(
        stepfunctions_engine, "_wait", lambda env, seconds: (waits.append(seconds), real_wait(env, 0.01))
    )
    held: list[Any] = []
    adapted["glue_job_run"] = lambda job, run: held.append(run)
    with mock_aws(config=SFN):
        make_glue_job()
        arn = run_asl(GLUE_SYNC, "T", wait=False)
        wait_until(lambda: len(waits) >= 8, what="eight polls of the held run")
        held[0].status = "SUCCEEDED"
        assert wait_execution(arn)["status"] == "SUCCEEDED"
    assert waits[:8] == [0.5, 0.75, 1.125, 1.6875, 2.53125, 3.796875, 5.0, 5.0]


WAITING = {
    "Wait": {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": "http://q", "MessageBody": {"token.$": "$$.Task.Token"}},
        "TimeoutSeconds": 60,
        "End": True,
    }
}


def threads_per_waiting_execution(executions: int = 4) -> float:
    import threading

    sfn = client("stepfunctions")
    sqs = client("sqs")
    url = sqs.create_queue(QueueName=f"q{len(sfn.list_state_machines()['stateMachines'])}")["QueueUrl"]
    states = json.loads(json.dumps(WAITING))
    states["Wait"]["Parameters"]["QueueUrl"] = url
    before = set(threading.enumerate())  # threads of earlier tests may end meanwhile: count only new ones
    arns = [run_asl(states, "Wait", wait=False) for _ in range(executions)]
    wait_until(
        lambda: (
            int(
                sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"][
                    "ApproximateNumberOfMessages"
                ]
            )
            == executions
        )
    )
    held = len(set(threading.enumerate()) - before) / executions
    for arn in arns:
        sfn.stop_execution(executionArn=arn)
    return held


def test_program_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.stepfunctions.parser.asl.component.program.program import Program

    with mock_aws(config=SFN):
        monkeypatch.setattr(Program, "eval", original(Program, "eval"))
        assert threads_per_waiting_execution() == 3, "moto's threads per waiting execution changed"
        monkeypatch.undo()
        assert threads_per_waiting_execution() == 2
        # A program's own TimeoutSeconds still ends it (moto's thread, joined with the timeout).
        timed = {
            "StartAt": "Hold",
            "TimeoutSeconds": 1,
            "States": {"Hold": {"Type": "Wait", "Seconds": 30, "End": True}},
        }
        sfn = client("stepfunctions")
        role = client("iam").get_role(RoleName="sfn")["Role"]["Arn"]
        machine = sfn.create_state_machine(name="timed", definition=json.dumps(timed), roleArn=role)
        arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name="t")["executionArn"]
        assert wait_execution(arn, timeout=10)["status"] == "TIMED_OUT"
        # Errors and outputs as before: a Pass program's output, a failing one's failure.
        assert json.loads(run_asl({"P": {"Type": "Pass", "Result": {"x": 1}, "End": True}}, "P")["output"]) == {"x": 1}
        assert run_asl({"F": {"Type": "Fail", "Error": "E", "Cause": "c"}}, "F")["status"] == "FAILED"
