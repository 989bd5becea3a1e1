"""The newer backends end to end on the local stack: Batch service jobs (SageMaker training through
the service job queue), SageMaker processing jobs and Glue job runs run as local processes, report
back through real-shaped events to the real StateChangeFunction, heal through the reconciler when
an event is lost, and stop when an operator stops their run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from jobline.catalog import load_catalog
from jobline.deps import Deps
from jobline.operations import Operations
from jobline.reconciler import reconcile
from jobline.settings import Settings
from tests.e2e.conftest import CATALOG, Stack, sqs_run_id, unique

pytestmark = pytest.mark.e2e
BACKEND_JOBS = ("train-model", "clean-data", "glue-etl")
# The attempt record's backend_status once the backend's terminal event was applied.
ENDED = {"train-model": "SUCCEEDED", "clean-data": "Completed", "glue-etl": "SUCCEEDED"}
OUTPUT = {"train-model": "models/{}.json", "clean-data": "clean/{}.json", "glue-etl": "glue-example/{}-1.json"}


class LocalSession:
    """What jobline.deps.Deps needs of a boto3 session, pointed at the local stack."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.region_name = stack.local.region

    def client(self, service: str) -> Any:
        return self.stack.client(service)


@pytest.fixture(scope="module")
def deps(stack: Stack) -> Deps:
    local = stack.local
    settings = Settings(
        run_table_name=local.output("RunTableName"),
        state_machine_prefix=local.output("RunStateMachinePrefix"),
        event_dlq_url=local.output("EventDeadLetterQueueUrl"),
        run_data_bucket=local.output("RunDataBucketName"),
        service_job_queue_arn=local.output("TrainingJobQueueArn"),
        sagemaker_role_arn=local.output("SageMakerExecutionRoleArn"),
        glue_job_name=local.output("ExampleGlueJobName"),
    )
    return Deps.build(settings, load_catalog(CATALOG), session=LocalSession(stack))


def start(stack: Stack, job: str, seconds: int = 0) -> str:
    key = unique(job)
    stack.send({"job": job, "idempotency_key": key, "arguments": {"seconds": str(seconds)}})
    return sqs_run_id(job, key)


def backend_job(stack: Stack, job: str, record: dict[str, Any]) -> dict[str, Any]:
    """The backend's own view of the attempt's job."""
    job_id = record["backend_job_id"]
    if job == "train-model":
        return stack.client("batch").describe_service_job(jobId=job_id)
    if job == "clean-data":
        return stack.client("sagemaker").describe_processing_job(ProcessingJobName=job_id.rsplit("/", 1)[-1])
    return stack.client("glue").get_job_run(JobName=stack.local.output("ExampleGlueJobName"), RunId=job_id)["JobRun"]


@pytest.mark.parametrize("job", BACKEND_JOBS)
def test_each_backend_runs_a_job_end_to_end(stack: Stack, job: str) -> None:
    run_id = start(stack, job)

    def reported() -> dict[str, Any] | None:
        row = stack.run(run_id)
        ended = row and (row.get("attempts") or {}).get("1", {}).get("backend_status") == ENDED[job]
        return row if ended and row["status"] == "SUCCEEDED" else None

    try:
        run = stack.local.wait_for(reported, 90, what=f"{job} to succeed and its backend's events to arrive")
    except TimeoutError as error:
        raise AssertionError(f"{error}; the row: {stack.run(run_id)}") from None
    assert (run["status"], run["reason"], run["attempt"], run["backend"]) == (
        "SUCCEEDED",
        "Completed",
        1,
        {"train-model": "batch_service", "clean-data": "sagemaker_processing", "glue-etl": "glue"}[job],
    )
    attempt = run["attempts"]["1"]
    assert attempt["started_at"] <= attempt["stopped_at"]
    output = stack.client("s3").get_object(Bucket=stack.data_bucket, Key=OUTPUT[job].format(run_id))
    written = json.loads(output["Body"].read())
    described = backend_job(stack, job, attempt)
    if job == "train-model":
        assert described["status"] == "SUCCEEDED"
        assert described["jobName"] == f"{run_id}-1"
        assert described["tags"]["jobline:attempt"] == "1"
        assert attempt["training_job_arn"].startswith("arn:aws:sagemaker:")
        training = stack.local.wait_for(lambda: stack.run(run_id)["attempts"]["1"].get("training"), 30)
        assert training["training_status"] == "Completed"
        assert written["epochs"] == 200  # the hyperparameters reached the job (SM_HPS)
        assert abs(written["a"] - 3) < 1.0
    elif job == "clean-data":
        assert described["ProcessingJobStatus"] == "Completed"
        assert described["Environment"]["JOBLINE_ATTEMPT"] == "1"
        assert written["prefix"] == "incoming/"  # ContainerArguments reached the job
    else:
        assert described["JobRunState"] == "SUCCEEDED"
        assert described["Arguments"]["--jobline_run_id"] == run_id
        assert written["jobline_run_id"] == run_id  # glue/example_job.py's receipt
        assert written["jobline_attempt"] == "1"


def _service_rule(stack: Stack) -> str:
    events = stack.client("events")
    for rule in events.list_rules(EventBusName="default")["Rules"]:
        if "Batch Service Job State Change" in rule.get("EventPattern", ""):
            return rule["Name"]
    raise AssertionError("no rule for Batch Service Job State Change")


@pytest.fixture
def lost_service_events(stack: Stack) -> Iterator[None]:
    events, rule = stack.client("events"), _service_rule(stack)
    events.disable_rule(Name=rule)
    try:
        yield
    finally:
        events.enable_rule(Name=rule)


def test_a_lost_event_is_healed_by_the_reconciler(stack: Stack, deps: Deps, lost_service_events: None) -> None:
    run_id = start(stack, "train-model")
    batch = stack.client("batch")

    def finished() -> dict[str, Any] | None:
        jobs = batch.list_service_jobs(jobQueue=stack.local.output("TrainingJobQueueArn"), jobStatus="SUCCEEDED")
        return next((j for j in jobs["jobSummaryList"] if j["jobName"] == f"{run_id}-1"), None)

    stack.local.wait_for(finished, 60, what="the service job to succeed")
    stuck = stack.run(run_id)
    assert stuck is not None
    assert stuck["status"] == "STARTING"  # its events were lost: the execution still waits on the token

    healed = reconcile(deps, older_than=timedelta(seconds=0))

    assert healed[run_id] == "applied: STARTING -> SUCCEEDED (execution answered)"  # its token, lost with the event
    run = stack.wait_run_id(run_id, timeout=30)
    assert (run["status"], run["reason"], run["attempts"]["1"]["backend_status"]) == (
        "SUCCEEDED",
        "Completed",
        "SUCCEEDED",
    )
    execution = stack.client("stepfunctions").describe_execution(executionArn=stack.execution_arn(run))
    assert execution["status"] == "SUCCEEDED"


@pytest.mark.parametrize("job", BACKEND_JOBS)
def test_stopping_a_run_stops_its_backend_job(stack: Stack, deps: Deps, job: str) -> None:
    run_id = start(stack, job, seconds=120)
    running = stack.wait_run(
        lambda r: r["run_id"] == run_id and bool((r.get("attempts") or {}).get("1", {}).get("backend_job_id")),
        timeout=60,
        final=False,
    )

    result = Operations(deps).stop_runs([run_id])

    assert result["errors"] == []
    assert [s["run_id"] for s in result["stopped"]] == [run_id]
    run = stack.wait_run_id(run_id, timeout=10)
    assert (run["status"], run["reason"]) == ("STOPPED", "Stopped by user")
    record = running["attempts"]["1"]
    stopped = {"train-model": ("status", "FAILED"), "clean-data": ("ProcessingJobStatus", "Stopped")}
    field, want = stopped.get(job, ("JobRunState", "STOPPED"))
    described = stack.local.wait_for(
        lambda: (d := backend_job(stack, job, record))[field] == want and d, 30, what=f"the {job} job to stop"
    )
    if job == "train-model":
        assert described["statusReason"].startswith("Stopped by user")
    # moto's engine turns a stop into ABORTED when the execution's worker thread notices it (AWS at
    # once); a thread parked on a task token may notice a moment later.
    sfn = stack.client("stepfunctions")
    assert stack.local.wait_for(
        lambda: sfn.describe_execution(executionArn=stack.execution_arn(run))["status"] == "ABORTED",
        30,
        what=f"the {job} execution to be aborted",
    )
