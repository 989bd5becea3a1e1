"""The three newer backends: catalog checks, run input, status mapping from AWS's documented
example events (events/), the service job's task token hand-back, and the reconciler."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from jobline.catalog import parse_catalog
from jobline.dal import RunTable
from jobline.errors import CatalogError, InvalidArguments
from jobline.runs import execution_input, new_row
from jobline.settings import Settings
from jobline.state_changes import MODELS, apply_state_change
from jobline.status import RunStatus
from jobline.triggers import RunRequest, Trigger
from tests.aws_resources import TRAINING_REQUEST, create_run_table
from tests.unit.conftest import sample

SETTINGS = Settings(
    run_table_name="runs",
    state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:run",
    event_dlq_url="https://dlq",
    run_data_bucket="data",
    service_job_queue_arn="arn:aws:batch:us-east-1:123456789012:job-queue/training",
    sagemaker_role_arn="arn:aws:iam::123456789012:role/sagemaker",
    glue_job_name="jobline-example",
)
TRAINING = TRAINING_REQUEST
BACKENDS: dict[str, dict[str, Any]] = {
    "train-model": {"type": "batch_service", "training": TRAINING},
    "clean-data": {"type": "sagemaker_processing", "image_uri": "123.dkr.ecr.us-east-1.amazonaws.com/clean:1"},
    "glue-etl": {"type": "glue", "arguments": {"--mode": "full"}, "worker_type": "G.2X", "number_of_workers": 4},
}


def job(name: str, backend: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": "d", "backend": backend or BACKENDS[name], "triggers": {"sqs": True}, **extra}


def request(name: str, **extra: Any) -> RunRequest:
    catalog = parse_catalog({"jobs": [job(name, **extra)]})
    return RunRequest(job=catalog.jobs[0], trigger=Trigger(type="manual", key="k", source="test", event={"a": 1}))


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
            job("a-processing-job-with-a-long-name-xxx-xy", BACKENDS["clean-data"], retry={"attempts": 10}),
            "would be 64 characters, over 63",
        ),
        (
            job("clean-data", {**BACKENDS["clean-data"], "instance_type": "m5.large"}),
            "field backend.sagemaker_processing",
        ),
        (job("glue-etl", {"type": "glue", "arguments": {"--db_password": "x"}}), "looks like a secret"),
        (job("glue-etl", {"type": "glue", "arguments": {"mode": "x"}}), "must look like --name"),
    ],
)
def test_backend_settings_are_checked_before_anything_runs(spec: dict[str, Any], expected: str) -> None:
    with pytest.raises(CatalogError, match=expected):
        parse_catalog({"jobs": [spec]})


def test_a_training_request_becomes_a_payload_with_the_attempt_in_it() -> None:
    req = request("train-model")
    service = execution_input(req, {}, {"JOBLINE_TRIGGER_EVENT": "{}"}, SETTINGS)["service"]
    assert service["JobQueue"] == SETTINGS.service_job_queue_arn
    parts = service["PayloadParts"]
    payload = json.loads(parts[0] + "2" + parts[1] + "2" + parts[2])  # what States.Format builds
    assert payload["Environment"]["JOBLINE_ATTEMPT"] == "2"
    assert payload["Environment"]["JOBLINE_RUN_ID"] == req.run_id
    assert {"Key": "jobline:attempt", "Value": "2"} in payload["Tags"]
    assert payload["RoleArn"] == SETTINGS.sagemaker_role_arn
    assert payload["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}


def test_a_payload_over_10_kib_is_refused_before_submission() -> None:
    req = request("train-model", environment={f"VAR_{i}": "v" * 200 for i in range(60)})
    with pytest.raises(InvalidArguments, match="over the 10240-byte serviceRequestPayload limit"):
        execution_input(req, {}, {}, SETTINGS)


def test_processing_and_glue_inputs() -> None:
    processing = execution_input(request("clean-data"), {}, {}, SETTINGS)["processing"]
    assert processing["RoleArn"] == SETTINGS.sagemaker_role_arn
    assert processing["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    glue = execution_input(request("glue-etl"), {"day": "x"}, {}, SETTINGS)["glue"]
    assert glue["JobName"] == "jobline-example"
    assert glue["Arguments"]["--mode"] == "full"
    assert glue["Arguments"]["--jobline_job_name"] == "glue-etl"
    assert (glue["WorkerType"], glue["NumberOfWorkers"], glue["Timeout"]) == ("G.2X", 4, 60)


def test_sagemaker_environment_values_over_256_characters_are_refused() -> None:
    with pytest.raises(InvalidArguments, match="at most 256 characters"):
        execution_input(request("clean-data", environment={"BIG": "x" * 300}), {}, {}, SETTINGS)


@pytest.fixture
def table() -> Any:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_run_table(client, "runs")
        yield RunTable(client, "runs")


def start_row(table: RunTable, name: str, run_id: str, **fields: Any) -> None:
    row = new_row(request(name), {}, SETTINGS, "2026-11-21T00:00:00.000Z")
    table.create_run({**row, "run_id": run_id, "attempt": 1, "status": "STARTING", "status_rank": 10, **fields})


def parse(name: str) -> Any:
    event = sample(name)
    return MODELS[event["detail-type"]].model_validate(event)


def test_a_service_job_event_ends_the_attempt_and_resumes_the_waiting_execution(table: RunTable) -> None:
    run_id = "train-model-0123456789abcdef0123"
    start_row(table, "train-model", run_id, task_token="token-1", task_token_attempt=1)
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    with Stubber(sfn) as stub:
        stub.add_response(
            "send_task_success",
            {},
            {"taskToken": "token-1", "output": json.dumps({"status": "SUCCEEDED", "reason": "Completed"})},
        )
        outcome = apply_state_change(parse("batch-service-job-succeeded.json"), table, None, sfn)
        stub.assert_no_pending_responses()
    assert outcome == "applied: STARTING -> SUCCEEDED (execution resumed)"
    row = table.get_run(run_id)
    assert row["attempts"]["1"]["training_job_arn"].endswith("88b610a69aa8380ca5b0a7aba3f81cb8")


def test_a_service_job_event_before_the_token_resumes_nothing(table: RunTable) -> None:
    run_id = "train-model-0123456789abcdef0123"
    start_row(table, "train-model", run_id)
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    with Stubber(sfn):  # any call would fail: none is expected
        outcome = apply_state_change(parse("batch-service-job-succeeded.json"), table, None, sfn)
    assert outcome == "applied: STARTING -> SUCCEEDED"
    assert table.get_run(run_id)["attempts"]["1"]["status"] == "SUCCEEDED"


def test_capacity_loops_between_scheduled_and_runnable_follow_event_time(table: RunTable) -> None:
    run_id = "train-model-0123456789abcdef0123"
    start_row(table, "train-model", run_id)
    scheduled = sample("batch-service-job-succeeded.json")
    scheduled["detail"].update(status="SCHEDULED", attempts=[], statusReason=None)
    scheduled["time"] = "2026-11-21T00:01:00Z"
    runnable = copy.deepcopy(scheduled)
    runnable["detail"]["status"] = "RUNNABLE"
    runnable["time"] = "2026-11-21T00:02:00Z"
    model = MODELS["Batch Service Job State Change"]
    for event in (runnable, scheduled):  # delivered out of order
        apply_state_change(model.model_validate(event), table, None, None)
    row = table.get_run(run_id)
    assert (row["status"], row["reason"], row["backend_status"]) == ("STARTING", "In queue", "RUNNABLE")


def test_training_events_add_detail_without_moving_the_status(table: RunTable) -> None:
    run_id = "train-model-0123456789abcdef0123"
    start_row(table, "train-model", run_id)
    outcome = apply_state_change(parse("sagemaker-training-job-completed.json"), table, None, None)
    row = table.get_run(run_id)
    assert outcome == "applied: training detail"
    assert row["status"] == "STARTING"
    assert row["attempts"]["1"]["training"]["secondary_status"] == "Completed"


@pytest.mark.parametrize(
    ("event", "status", "reason"),
    [
        ("sagemaker-processing-job-completed.json", "SUCCEEDED", "Completed"),
        ("sagemaker-processing-job-failed.json", "TIMEOUT", "Timeout"),
    ],
)
def test_processing_job_events_map_to_run_statuses(table: RunTable, event: str, status: str, reason: str) -> None:
    run_id = "clean-data-0123456789abcdef0123"
    start_row(table, "clean-data", run_id)
    apply_state_change(parse(event), table, None, None)
    row = table.get_run(run_id)
    assert (row["status"], row["reason"]) == (status, reason)
    assert row["attempts"]["1"]["started_at"] == "2026-11-21T05:01:00.000Z"


def test_glue_events_find_their_run_through_the_job_run_arguments(table: RunTable) -> None:
    run_id = "glue-etl-0123456789abcdef0123"
    start_row(table, "glue-etl", run_id, max_attempts=1)
    glue = boto3.client("glue", region_name="us-east-1")
    glue.create_job(Name="jobline-example", Role="r", Command={"Name": "glueetl", "ScriptLocation": "s3://b/s.py"})
    glue_run = glue.start_job_run(
        JobName="jobline-example", Arguments={"--jobline_run_id": run_id, "--jobline_attempt": "1"}
    )["JobRunId"]
    running, failed = sample("glue-job-run-status-running.json"), sample("glue-job-state-change-failed.json")
    for event in (failed, running):  # out of order, and Glue's own run id
        event["detail"]["jobRunId"] = glue_run
        apply_state_change(MODELS[event["detail-type"]].model_validate(event), table, glue, None)
    row = table.get_run(run_id)
    assert (row["status"], row["reason"], row["backend_status"]) == ("FAILED", "JobFailed", "FAILED")
    assert row["attempts"]["1"]["backend_job_id"] == glue_run

    foreign = glue.start_job_run(JobName="jobline-example")["JobRunId"]
    failed["detail"]["jobRunId"] = foreign
    assert apply_state_change(MODELS[failed["detail-type"]].model_validate(failed), table, glue, None) == (
        "ignored: not a jobline job"
    )


def test_the_status_mapping_covers_every_backend_status() -> None:
    from jobline import status

    for mapping in (status.SERVICE_STATUS, status.SAGEMAKER_STATUS, status.GLUE_STATUS):
        assert all(isinstance(run_status, RunStatus) for run_status, _ in mapping.values())
    assert set(status.SERVICE_STATUS) | {"FAILED"} == set(status.SERVICE_RANK)
    assert set(status.SAGEMAKER_STATUS) == set(status.SAGEMAKER_RANK)
    assert set(status.GLUE_STATUS) == set(status.GLUE_RANK)


def test_the_reconciler_heals_a_processing_run_whose_events_were_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    from jobline.deps import Deps
    from jobline.reconciler import reconcile

    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        create_run_table(session.client("dynamodb"), "runs")
        deps = Deps.build(SETTINGS, parse_catalog({"jobs": [job("clean-data")]}), session=session)
        run_id = "clean-data-0123456789abcdef0123"
        start_row(deps.table, "clean-data", run_id, updated_at="2026-11-21T00:00:00.000Z")
        session.client("sagemaker").create_processing_job(
            ProcessingJobName=f"{run_id}-1",
            ProcessingResources={
                "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}
            },
            AppSpecification={"ImageUri": "img"},
            RoleArn=SETTINGS.sagemaker_role_arn,
            StoppingCondition={"MaxRuntimeInSeconds": 600},
        )
        fresh = "clean-data-fffffffffffffffffff0"
        start_row(deps.table, "clean-data", fresh, updated_at=datetime.now(UTC).isoformat())

        outcomes = reconcile(deps, timedelta(minutes=15))

        assert set(outcomes) == {run_id}  # the fresh run is left alone
        healed = deps.table.get_run(run_id)
        assert healed["status"] == "SUCCEEDED"  # moto completes processing jobs at once
        assert healed["attempts"]["1"]["backend_status"] == "Completed"
