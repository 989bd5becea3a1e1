"""Batch service jobs (SageMaker training through a service job queue): catalog checks, the
payload with the attempt in it, status mapping, the task token answer, training detail."""

from __future__ import annotations

import copy
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from jobline.backends.batch_service import SERVICE_RANK, SERVICE_STATUS
from jobline.catalog import parse_catalog
from jobline.dal import RunTable, _to_item
from jobline.errors import CatalogError, InvalidArguments
from jobline.runs import execution_input
from jobline.state_changes import Effect, Outcome, apply_state_change
from jobline.status import RunStatus
from tests.aws_resources import TRAINING_REQUEST
from tests.unit.backends.conftest import SETTINGS, job, parse, request, start_row, submit_params
from tests.unit.conftest import sample
from tests.unit.event_lab import ticket

TRAINING = TRAINING_REQUEST
RUN_ID = "train-model-0123456789abcdef0123"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            job(
                "train-model", {"type": "batch_service", "training": {**TRAINING, "HyperParameters": {"x": "y" * 6000}}}
            ),
            "at most 5120",
        ),
        (
            job("train-model", {"type": "batch_service", "training": {**TRAINING, "TrainingJobName": "x"}}),
            "TrainingJobName is set by jobline",
        ),
        (
            job("train-model", {"type": "batch_service", "training": {**TRAINING, "RoleArn": "arn:aws:iam::1:role/x"}}),
            r"field backend.training: jobline passes only the stack's SageMaker execution role",
        ),
    ],
)
def test_training_requests_are_checked_before_anything_runs(spec: dict[str, Any], expected: str) -> None:
    with pytest.raises(CatalogError, match=expected):
        parse_catalog({"jobs": [spec]})


def test_a_training_request_is_a_json_object_the_submitter_completes() -> None:
    req = request("train-model")
    service = submit_params(req)
    assert service["jobQueue"] == SETTINGS.service_job_queue_arn
    training = service["training"]  # each attempt's values are the submitter's (tests/unit/test_submit_backends.py)
    assert "TrainingJobName" not in training
    assert "JOBLINE_ATTEMPT" not in training["Environment"]
    assert training["Environment"]["JOBLINE_RUN_ID"] == req.run_id
    assert training["Tags"] == [{"Key": "jobline:run-id", "Value": req.run_id}]
    assert training["RoleArn"] == SETTINGS.sagemaker_role_arn
    assert training["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}


def test_a_payload_over_10_kib_is_refused_before_submission() -> None:
    req = request("train-model", environment={f"VAR_{i}": "v" * 200 for i in range(60)})
    with pytest.raises(InvalidArguments, match="over the 10240-byte serviceRequestPayload limit"):
        execution_input(req.job, req.run_id, {}, {}, SETTINGS)


def test_training_environment_values_over_sagemakers_limit_are_refused_before_submission() -> None:
    req = request("train-model", environment={"SHORT": "v", "LONG": "v" * 513})
    with pytest.raises(InvalidArguments, match=r"at most 512 characters: \['LONG'\]"):
        execution_input(req.job, req.run_id, {}, {}, SETTINGS)


def test_a_service_job_event_ends_the_attempt_and_answers_its_task_token(table: RunTable) -> None:
    start_row(table, "train-model", RUN_ID)
    table._client.put_item(TableName="runs", Item=_to_item(ticket(RUN_ID, 1, 1, task_token="token-1")))
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    with Stubber(sfn) as stub:
        stub.add_response("send_task_success", {}, {"taskToken": "token-1", "output": ANY})
        outcome = apply_state_change(parse("batch-service-job-succeeded.json"), table, None, sfn)
        stub.assert_no_pending_responses()
    assert (outcome.effect, outcome.before, outcome.after, outcome.answered) == (
        Effect.APPLIED,
        RunStatus.STARTING,
        RunStatus.SUCCEEDED,
        True,
    )
    assert str(outcome) == "applied: STARTING -> SUCCEEDED (execution answered)"
    row = table.get_run(RUN_ID)
    assert row is not None
    assert row["attempts"]["1"]["training_job_arn"].endswith("88b610a69aa8380ca5b0a7aba3f81cb8")


def test_a_service_job_event_without_a_ticket_answers_nothing(table: RunTable) -> None:
    start_row(table, "train-model", RUN_ID)
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    with Stubber(sfn):  # any call would fail: none is expected
        outcome = apply_state_change(parse("batch-service-job-succeeded.json"), table, None, sfn)
    assert outcome == Outcome(Effect.APPLIED, "STARTING -> SUCCEEDED", RunStatus.STARTING, RunStatus.SUCCEEDED)
    row = table.get_run(RUN_ID)
    assert row is not None
    assert row["attempts"]["1"]["status"] == "SUCCEEDED"


def test_capacity_loops_between_scheduled_and_runnable_follow_event_time(table: RunTable) -> None:
    start_row(table, "train-model", RUN_ID)
    scheduled = sample("batch-service-job-succeeded.json")
    scheduled["detail"].update(status="SCHEDULED", attempts=[], statusReason=None)
    scheduled["time"] = "2026-11-21T00:01:00Z"
    runnable = copy.deepcopy(scheduled)
    runnable["detail"]["status"] = "RUNNABLE"
    runnable["time"] = "2026-11-21T00:02:00Z"
    for event in (runnable, scheduled):  # delivered out of order
        apply_state_change(parse(event), table, None, None)
    row = table.get_run(RUN_ID)
    assert row is not None
    assert (row["status"], row["reason"], row["backend_status"]) == ("STARTING", "In queue", "RUNNABLE")


def test_training_events_add_detail_without_moving_the_status(table: RunTable) -> None:
    start_row(table, "train-model", RUN_ID)
    outcome = apply_state_change(parse("sagemaker-training-job-completed.json"), table, None, None)
    row = table.get_run(RUN_ID)
    assert row is not None
    assert (outcome.effect, str(outcome)) == (Effect.APPLIED, "applied: training detail")
    assert row["status"] == "STARTING"
    assert row["attempts"]["1"]["training"]["secondary_status"] == "Completed"
    again = apply_state_change(parse("sagemaker-training-job-completed.json"), table, None, None)
    assert again.effect is Effect.UNCHANGED


def test_the_status_mapping_covers_every_service_job_status() -> None:
    assert all(isinstance(run_status, RunStatus) for run_status, _ in SERVICE_STATUS.values())
    assert set(SERVICE_STATUS) | {"FAILED"} == set(SERVICE_RANK)  # FAILED is classified by its reason


def test_a_training_job_arn_only_in_latest_attempt_is_kept(table: RunTable) -> None:
    """AWS's "Batch Service Job State Change" events name the SageMaker job in
    detail.latestAttempt.serviceResourceId while detail.attempts is still empty (a RUNNING job)."""
    start_row(table, "train-model", RUN_ID)
    running = sample("batch-service-job-succeeded.json")
    running["detail"].update(status="RUNNING", attempts=[], stoppedAt=None)
    apply_state_change(parse(running), table, None, None)
    row = table.get_run(RUN_ID)
    assert row is not None
    arn = sample("batch-service-job-succeeded.json")["detail"]["latestAttempt"]["serviceResourceId"]["value"]
    assert row["attempts"]["1"]["training_job_arn"] == arn
