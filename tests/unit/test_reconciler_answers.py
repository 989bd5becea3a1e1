"""The reconciler applies what it describes through the state change path (on moto): a lost
terminal event is applied and answers the attempt's task token, a lost answer is given again,
and an ended run whose execution nothing can answer has it stopped."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jobline.dal import _to_item
from jobline.deps import get_deps
from jobline.reconciler import reconcile
from jobline.status import RunStatus, end_write
from tests.unit.event_lab import new_row, ticket

RUN_ID = "clean-data-0123456789abcdef0123"
OLD = "2026-11-21T00:00:00.000Z"


@pytest.fixture
def running(env: dict[str, Any]) -> dict[str, Any]:
    """A SageMaker processing run whose attempt 1 completed with its event lost, its execution waiting."""
    session = env["session"]
    sfn, sagemaker = session.client("stepfunctions"), session.client("sagemaker")
    # Any run machine will do: the reconciler follows the execution ARN the row stores.
    machine = next(m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"])
    arn = sfn.start_execution(stateMachineArn=machine, name=RUN_ID)["executionArn"]
    role = session.client("iam").create_role(RoleName="sm", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    sagemaker.create_processing_job(
        ProcessingJobName=f"{RUN_ID}-1",
        ProcessingResources={
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}
        },
        AppSpecification={"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/clean:1"},
        RoleArn=role,
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    row = new_row(run_id=RUN_ID, job="clean-data", backend="sagemaker_processing", execution_arn=arn)
    row.update(status="RUNNING", reason="Running", status_rank=20, attempt=1, attempts={"1": {"status": "RUNNING"}})
    get_deps().table.create_run(row)
    return {**env, "execution": arn}


def put_ticket(env: dict[str, Any], **fields: Any) -> None:
    item = ticket(RUN_ID, 1, 3, backend="sagemaker_processing", **fields)
    env["session"].client("dynamodb").put_item(TableName="runs", Item=_to_item(item))


def test_a_lost_terminal_event_is_applied_and_answered(running: dict[str, Any]) -> None:
    put_ticket(running, task_token="token-1")
    outcomes = reconcile(get_deps(), older_than=timedelta(0))
    assert outcomes[RUN_ID] == "applied: RUNNING -> SUCCEEDED (execution answered)"
    assert (get_deps().table.get_run(RUN_ID) or {})["status"] == "SUCCEEDED"


def test_a_lost_answer_of_an_ended_run_is_given_again(running: dict[str, Any]) -> None:
    put_ticket(running, task_token="token-1")
    get_deps().table.write_run(RUN_ID, end_write(RunStatus.SUCCEEDED, "Completed", OLD))
    outcomes = reconcile(get_deps(), older_than=timedelta(0))
    assert outcomes[RUN_ID] == "answered: its waiting execution was handed the outcome"
    sfn = running["session"].client("stepfunctions")
    assert sfn.describe_execution(executionArn=running["execution"])["status"] == "RUNNING"  # answered, not stopped


def test_an_ended_run_nothing_can_answer_has_its_execution_stopped(running: dict[str, Any]) -> None:
    put_ticket(running)  # no token: nothing the reconciler could answer
    get_deps().table.write_run(RUN_ID, end_write(RunStatus.SUCCEEDED, "Completed", OLD))
    outcomes = reconcile(get_deps(), older_than=timedelta(0))
    assert outcomes[RUN_ID] == "stopped: the run had ended SUCCEEDED, its execution ran on"
    sfn = running["session"].client("stepfunctions")
    assert sfn.describe_execution(executionArn=running["execution"])["status"] == "ABORTED"


def test_a_run_waiting_for_a_slot_is_left_to_the_slot_sweep(running: dict[str, Any]) -> None:
    ddb = running["session"].client("dynamodb")
    ddb.update_item(
        TableName="runs",
        Key={"pk": {"S": f"RUN#{RUN_ID}"}},
        UpdateExpression="SET waiting_for = :w, slot_token = :t, #s = :p, status_rank = :zero, attempt = :zero",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":w": {"S": "slot#clean-data"},
            ":t": {"S": "slot-token"},
            ":p": {"S": "PENDING"},
            ":zero": {"N": "0"},
        },
    )
    assert RUN_ID not in reconcile(get_deps(), older_than=timedelta(0))
