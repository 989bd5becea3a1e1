"""The real run.asl.json on moto's engine for the newer backends: Batch service jobs (SageMaker
training through a service job queue, with the task token hand-back), SageMaker processing jobs
and Glue job runs. A script decides how each attempt ends; the state change handler is the real
jobline.state_changes.apply_state_change, fed with the service job's DescribeServiceJob detail
as Batch's event carries it."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from jobline.backends.batch_service import ServiceJobStateChange
from jobline.catalog import parse_catalog
from jobline.deps import Deps
from jobline.operations import Operations
from jobline.settings import Settings
from jobline.state_changes import Outcome, apply_state_change
from jobline.triggers import RunRequest, Trigger
from jobline_local import adaptations
from jobline_local.emulated.batch_service_jobs import now_ms
from tests.aws_resources import (
    REGION,
    TEST_ENVIRONMENT,
    TRAINING_REQUEST,
    create_run_table,
    create_state_machine,
    create_training_queue,
)
from tests.cfn import ASL
from tests.integration.conftest import wait_for_execution
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
TRAINING = {**TRAINING_REQUEST, "HyperParameters": {"epochs": "3"}}
BACKENDS: dict[str, dict[str, Any]] = {
    "train-model": {"type": "batch_service", "training": TRAINING},
    "clean-data": {"type": "sagemaker_processing", "image_uri": "123.dkr.ecr.us-east-1.amazonaws.com/clean:1"},
    "glue-etl": {"type": "glue", "arguments": {"--mode": "full"}, "execution_class": "FLEX"},
}
MAX_RUNTIME = "MaxRuntimeExceeded: the job exceeded its maximum runtime"


class Script:
    """Decides how each backend job ends, by attempt: succeed, fail, timeout or hold (left running)."""

    def __init__(self) -> None:
        self.outcomes: dict[int, str] = {}
        self.processing: list[Any] = []
        self.service: list[Any] = []
        self.glue: list[Any] = []
        self.deps: Deps | None = None
        self.event_first = False

    def outcome(self, attempt: int) -> str:
        return self.outcomes.get(attempt, "succeed")

    def processing_job(self, job: Any) -> None:
        self.processing.append(job)
        outcome = self.outcome(int(job.environment["JOBLINE_ATTEMPT"]))
        job.processing_job_status = {"succeed": "Completed", "fail": "Failed", "timeout": "Stopped"}.get(
            outcome, "InProgress"
        )
        job.failure_reason = {"fail": "AlgorithmError: exit code 1", "timeout": MAX_RUNTIME}.get(outcome)

    def glue_job_run(self, job: Any, run: Any) -> None:
        self.glue.append(run)
        outcome = self.outcome(int(run.arguments.get("--jobline_attempt", "1")))
        run.status = {"succeed": "SUCCEEDED", "fail": "FAILED", "timeout": "TIMEOUT"}.get(outcome, "RUNNING")
        run.error_message = "ZeroDivisionError: division by zero" if outcome == "fail" else None

    def service_job(self, job: Any) -> None:
        self.service.append(job)
        job.status, job.started_at = "RUNNING", now_ms()
        if self.event_first:  # Batch's terminal event is handled before the execution stores its token
            self.end_service_job(job, self.outcome(int(job.tags["jobline:attempt"])))

    def end_service_job(self, job: Any, outcome: str) -> Outcome:
        reason = {
            "succeed": "Received status from SageMaker: Training job completed",
            "fail": "Received status from SageMaker: AlgorithmError: exit code 1",
            "timeout": f"Received status from SageMaker: {MAX_RUNTIME}",
        }[outcome]
        job.finish("SUCCEEDED" if outcome == "succeed" else "FAILED", reason)
        assert self.deps is not None
        event = {
            "version": "0",
            "id": f"event-{job.job_id}",
            "detail-type": "Batch Service Job State Change",
            "source": "aws.batch",
            "account": job.account_id,
            "time": "2026-11-21T00:10:00Z",
            "region": job.region,
            "resources": [job.arn],
            "detail": job.describe(),
        }
        return apply_state_change(
            ServiceJobStateChange.model_validate(event),
            self.deps.table,
            self.deps.client("glue"),
            self.deps.client("stepfunctions"),
        )


@pytest.fixture
def script() -> Iterator[Script]:
    script = Script()
    saved = dict(adaptations.hooks)
    adaptations.set_hooks(
        processing_job=script.processing_job, service_job=script.service_job, glue_job_run=script.glue_job_run
    )
    yield script
    adaptations.hooks.update(saved)


@pytest.fixture
def backends(monkeypatch: pytest.MonkeyPatch, script: Script) -> Iterator[dict[str, Any]]:
    for key, value in TEST_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    adaptations.install()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        session = boto3.session.Session(region_name=REGION)
        create_run_table(session.client("dynamodb"), "runs")
        machine = create_state_machine(session.client("stepfunctions"), session.client("iam"), "runs")
        batch = session.client("batch")
        queue = create_training_queue(batch, capacity=2)
        session.client("glue").create_job(
            Name="jobline-example",
            Role="arn:aws:iam::123456789012:role/glue",
            Command={"Name": "glueetl", "ScriptLocation": "s3://run-data/glue/example_job.py"},
            ExecutionProperty={"MaxConcurrentRuns": 1},
            Timeout=60,
        )
        session.client("s3").create_bucket(Bucket="run-data")
        settings = Settings(
            run_table_name="runs",
            state_machine_arn=machine,
            event_dlq_url="https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
            run_data_bucket="run-data",
            service_job_queue_arn=queue,
            sagemaker_role_arn="arn:aws:iam::123456789012:role/sagemaker",
            glue_job_name="jobline-example",
        )
        yield {"session": session, "settings": settings, "queue": queue}


def deps_for(backends: dict[str, Any], script: Script, name: str, **extra: Any) -> Deps:
    spec = {"name": name, "description": "d", "backend": BACKENDS[name], "timeout_seconds": 600, **extra}
    deps = Deps.build(backends["settings"], parse_catalog({"jobs": [spec]}), session=backends["session"])
    script.deps = deps
    return deps


def start(deps: Deps, key: str = "k1") -> str:
    job = deps.catalog.jobs[0]
    trigger = Trigger(type="manual", key=key, source="test", event={"order": 7})
    return deps.starter.start(RunRequest(job=job, trigger=trigger, arguments={})).run_id


def history(backends: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    sfn = backends["session"].client("stepfunctions")
    arn = backends["settings"].state_machine_arn.replace(":stateMachine:", ":execution:") + f":{run_id}"
    return sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]


def entered(events: list[dict[str, Any]]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def run_to_end(backends: dict[str, Any], deps: Deps, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    execution = wait_for_execution(backends, run_id, timeout=60)
    return execution, deps.table.get_run(run_id)


def test_the_state_machine_uses_only_integrations_aws_supports() -> None:
    """AWS rejects a definition with an integration pattern a service does not support (DynamoDB's
    optimized integration has no .waitForTaskToken; Batch has .sync; SageMaker and Glue .sync);
    moto's engine does not check, so this does."""
    supported = {
        "dynamodb": {None},
        "batch": {None, "sync"},
        "sagemaker": {None, "sync"},
        "glue": {None, "sync"},
        "aws-sdk": {None, "waitForTaskToken"},
    }
    for name, state in json.loads(ASL.read_text())["States"].items():
        if state["Type"] != "Task":
            continue
        service, _, action = state["Resource"].removeprefix("arn:aws:states:::").partition(":")
        pattern = action.split(".", 1)[1] if "." in action else None
        assert pattern in supported[service], f"{name}: {state['Resource']} is not supported by AWS"


# ---------------------------------------------------------------- Batch service jobs
def test_a_service_job_whose_event_comes_after_the_token_is_resumed_by_the_handler(
    backends: dict[str, Any], script: Script
) -> None:
    deps = deps_for(backends, script, "train-model")
    run_id = start(deps)
    row = wait_until(
        lambda: (r := deps.table.get_run(run_id)).get("task_token_attempt") == 1 and r,
        timeout=30,
        what="the execution to store its task token",
    )
    (job,) = script.service
    assert row["service_job_id"] == job.job_id
    assert str(script.end_service_job(job, "succeed")) == "applied: STARTING -> SUCCEEDED (execution resumed)"

    execution, row = run_to_end(backends, deps, run_id)
    assert execution["status"] == "SUCCEEDED"
    assert (row["status"], row["reason"], row["attempt"]) == ("SUCCEEDED", "Completed", 1)
    assert "DescribeServiceJob" not in entered(history(backends, run_id))
    payload = json.loads(job.payload)
    assert job.name == f"{run_id}-1"
    assert job.client_token == f"{run_id}-1"
    assert job.queue_arn == backends["queue"]
    assert job.service_job_type == "SAGEMAKER_TRAINING"
    assert payload["Environment"]["JOBLINE_ATTEMPT"] == "1"
    assert {"Key": "jobline:attempt", "Value": "1"} in payload["Tags"]
    assert payload["HyperParameters"] == {"epochs": "3"}
    assert job.tags == {"jobline:run-id": run_id, "jobline:job": "train-model", "jobline:attempt": "1"}
    assert job.timeout_config == {"attemptDurationSeconds": 600}


def test_a_service_job_that_ends_before_the_token_is_stored_is_described(
    backends: dict[str, Any], script: Script
) -> None:
    deps = deps_for(backends, script, "train-model")
    script.event_first = True
    run_id = start(deps)

    execution, row = run_to_end(backends, deps, run_id)
    assert execution["status"] == "SUCCEEDED"
    assert (row["status"], row["attempt"]) == ("SUCCEEDED", 1)
    events = history(backends, run_id)
    assert "DescribeServiceJob" in entered(events)
    failed = [e["taskFailedEventDetails"]["error"] for e in events if "taskFailedEventDetails" in e]
    # WaitForServiceJob's conditional write (an SDK error name), then RecordOutcome's (the event ended the run)
    assert failed == ["DynamoDb.ConditionalCheckFailedException", "DynamoDB.ConditionalCheckFailedException"]
    assert "task_token" not in row


def test_a_failed_service_job_is_retried_and_a_later_attempt_succeeds(backends: dict[str, Any], script: Script) -> None:
    deps = deps_for(backends, script, "train-model", retry={"attempts": 3, "interval_seconds": 1})
    run_id = start(deps)
    for attempt, outcome in ((1, "fail"), (2, "succeed")):
        wait_until(
            lambda a=attempt: deps.table.get_run(run_id).get("task_token_attempt") == a,
            timeout=30,
            what=f"attempt {attempt} to wait on its token",
        )
        assert script.end_service_job(script.service[-1], outcome).resumed

    execution, row = run_to_end(backends, deps, run_id)
    assert execution["status"] == "SUCCEEDED"
    assert (row["status"], row["attempt"]) == ("SUCCEEDED", 2)
    assert row["attempts"]["1"]["status"] == "FAILED"
    assert [j.name for j in script.service] == [f"{run_id}-1", f"{run_id}-2"]
    assert json.loads(script.service[1].payload)["Environment"]["JOBLINE_ATTEMPT"] == "2"


def test_a_service_job_that_ran_out_of_time_ends_timeout_both_ways(backends: dict[str, Any], script: Script) -> None:
    deps = deps_for(backends, script, "train-model", retry={"attempts": 2, "interval_seconds": 0})
    script.outcomes = {1: "timeout"}
    script.event_first = True  # the state machine classifies (DescribeServiceJob)
    described = start(deps, "described")
    _, row = run_to_end(backends, deps, described)
    assert (row["status"], row["reason"], row["attempt"]) == ("TIMEOUT", "Timeout", 1)

    script.event_first = False  # the handler classifies (the token hand-back)
    resumed = start(deps, "resumed")
    wait_until(lambda: deps.table.get_run(resumed).get("task_token_attempt") == 1, timeout=30, what="the token")
    script.end_service_job(script.service[-1], "timeout")
    execution, row = run_to_end(backends, deps, resumed)
    assert execution["status"] == "FAILED"
    assert (row["status"], row["reason"], row["attempt"]) == ("TIMEOUT", "Timeout", 1)
    assert len(script.service) == 2  # no retry after a timeout


class SubmitFaults:
    """Answers chosen SubmitServiceJob calls with an error, as AWS's endpoint would: after Batch took
    the request (`lost`: the job exists, its response never arrives) or instead of it (`refuse`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from moto.core.responses import BaseResponse

        self.lost: list[str] = []  # job ids whose submit response was lost
        self.plan: list[tuple[str, int, str]] = []  # (how, HTTP status, error code), one per call
        inner = BaseResponse.call_action

        def call_action(response_self: Any) -> Any:
            if not response_self.path.endswith("/v1/submitservicejob") or not self.plan:
                return inner(response_self)
            how, status, code = self.plan.pop(0)
            if how == "lost":
                accepted = inner(response_self)
                self.lost.append(json.loads(accepted[2])["jobId"])
            headers = {
                "x-amzn-errortype": code,
                "x-amzn-requestid": str(uuid.uuid4()),
                "content-type": "application/json",
            }
            return status, headers, json.dumps({"__type": code, "message": f"injected {how} {code}"})

        call_action.jobline_contracts = True  # type: ignore[attr-defined]  # contracts stay as installed
        monkeypatch.setattr(BaseResponse, "call_action", call_action)


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.stepfunctions.parser.asl.component.common.retry import jitter_strategy_decl

    # FULL jitter waits anywhere in [0, interval]: take the short end so the tests stay quick.
    monkeypatch.setattr(jitter_strategy_decl.random, "uniform", lambda low, high: min(high, 1.0))


def failed_errors(backends: dict[str, Any], run_id: str) -> list[str]:
    return [e["taskFailedEventDetails"]["error"] for e in history(backends, run_id) if "taskFailedEventDetails" in e]


def test_a_retried_submit_whose_first_response_was_lost_finds_its_job(
    backends: dict[str, Any], script: Script, monkeypatch: pytest.MonkeyPatch, quick_retries: None
) -> None:
    faults = SubmitFaults(monkeypatch)
    faults.plan = [("lost", 500, "ServerException")]
    deps = deps_for(backends, script, "train-model", retry={"attempts": 2, "interval_seconds": 1})
    run_id = start(deps)
    row = wait_until(
        lambda: (r := deps.table.get_run(run_id)).get("task_token_attempt") == 1 and r,
        timeout=30,
        what="the execution to wait on the job it submitted",
    )
    (job,) = script.service  # submitted once: the retry was refused as the same request
    assert faults.lost == [job.job_id] == [row["service_job_id"]]
    # Step Functions retried the lost submit; Batch refused the repeat (clientToken); the job was found.
    assert failed_errors(backends, run_id) == ["Batch.ServerException", "Batch.ClientException"]
    assert "FindSubmittedServiceJob" in entered(history(backends, run_id))
    script.end_service_job(job, "succeed")

    execution, row = run_to_end(backends, deps, run_id)
    assert execution["status"] == "SUCCEEDED"
    assert (row["status"], row["attempt"]) == ("SUCCEEDED", 1)


def test_a_refused_submit_ends_the_run_without_a_retry(
    backends: dict[str, Any], script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = SubmitFaults(monkeypatch)
    faults.plan = [("refuse", 400, "ClientException")]
    deps = deps_for(backends, script, "train-model", retry={"attempts": 3, "interval_seconds": 1})
    run_id = start(deps)

    execution, row = run_to_end(backends, deps, run_id)
    assert execution["status"] == "FAILED"
    assert (row["status"], row["reason"], row["attempt"]) == ("FAILED", "SubmitFailed", 1)
    assert script.service == []
    assert failed_errors(backends, run_id) == ["Batch.ClientException"]  # no job by its name: a real refusal


def test_a_submit_still_throttled_after_its_retries_is_retried_by_the_jobs_strategy(
    backends: dict[str, Any], script: Script, monkeypatch: pytest.MonkeyPatch, quick_retries: None
) -> None:
    faults = SubmitFaults(monkeypatch)
    faults.plan = [("refuse", 429, "TooManyRequestsException")] * 9  # the first try and its 8 retries
    deps = deps_for(backends, script, "train-model", retry={"attempts": 2, "interval_seconds": 1})
    run_id = start(deps)
    wait_until(lambda: script.service, timeout=60, what="the second attempt's submit")
    (job,) = script.service
    assert job.name == f"{run_id}-2"
    wait_until(lambda: deps.table.get_run(run_id).get("task_token_attempt") == 2, timeout=30, what="the token")
    script.end_service_job(job, "succeed")

    execution, row = run_to_end(backends, deps, run_id)
    assert execution["status"] == "SUCCEEDED"
    assert (row["status"], row["attempt"]) == ("SUCCEEDED", 2)
    # moto's engine names an error botocore's model lacks (Batch's 429) Batch.BatchException; both are retried.
    throttled = failed_errors(backends, run_id)[:10]
    assert throttled[:9] == ["Batch.BatchException"] * 9
    assert throttled[9:] != ["Batch.BatchException"]
    assert entered(history(backends, run_id)).count("SubmitFailedRetryable") == 1


# ---------------------------------------------------------------- SageMaker processing jobs
def test_a_processing_job_runs_with_the_runs_request(backends: dict[str, Any], script: Script) -> None:
    deps = deps_for(backends, script, "clean-data")
    run_id = start(deps)
    execution, row = run_to_end(backends, deps, run_id)

    assert execution["status"] == "SUCCEEDED"
    assert (row["status"], row["reason"], row["attempt"]) == ("SUCCEEDED", "Completed", 1)
    (job,) = script.processing
    assert job.processing_job_name == f"{run_id}-1"
    assert job.environment["JOBLINE_ATTEMPT"] == "1"
    assert job.environment["JOBLINE_RUN_ID"] == run_id
    assert job.processing_resources["ClusterConfig"] == {
        "InstanceCount": 1,
        "InstanceType": "ml.m5.large",
        "VolumeSizeInGB": 30,
    }
    assert job.stopping_condition == {"MaxRuntimeInSeconds": 600}
    assert job.role_arn == backends["settings"].sagemaker_role_arn
    assert {"Key": "jobline:run-id", "Value": run_id} in job.tags


def test_a_failed_processing_job_is_retried(backends: dict[str, Any], script: Script) -> None:
    deps = deps_for(backends, script, "clean-data", retry={"attempts": 2, "interval_seconds": 0})
    script.outcomes = {1: "fail", 2: "succeed"}
    execution, row = run_to_end(backends, deps, start(deps))

    assert execution["status"] == "SUCCEEDED"
    assert (row["status"], row["attempt"]) == ("SUCCEEDED", 2)
    assert [j.environment["JOBLINE_ATTEMPT"] for j in script.processing] == ["1", "2"]


def test_a_processing_job_over_its_max_runtime_ends_timeout(backends: dict[str, Any], script: Script) -> None:
    deps = deps_for(backends, script, "clean-data", retry={"attempts": 2, "interval_seconds": 0})
    script.outcomes = {1: "timeout"}
    execution, row = run_to_end(backends, deps, start(deps))

    assert execution["status"] == "FAILED"
    assert (row["status"], row["reason"], row["attempt"]) == ("TIMEOUT", "Timeout", 1)
    assert len(script.processing) == 1
    failed = [e for e in history(backends, row["run_id"]) if "taskFailedEventDetails" in e]
    cause = json.loads(failed[0]["taskFailedEventDetails"]["cause"])
    assert (cause["ProcessingJobStatus"], cause["FailureReason"]) == ("Stopped", MAX_RUNTIME)


# ---------------------------------------------------------------- Glue job runs
def test_a_glue_run_gets_the_runs_arguments(backends: dict[str, Any], script: Script) -> None:
    deps = deps_for(backends, script, "glue-etl")
    run_id = start(deps)
    execution, row = run_to_end(backends, deps, run_id)

    assert execution["status"] == "SUCCEEDED"
    assert (row["status"], row["attempt"]) == ("SUCCEEDED", 1)
    (run,) = script.glue
    assert run.arguments["--jobline_run_id"] == run_id
    assert run.arguments["--jobline_attempt"] == "1"
    assert run.arguments["--mode"] == "full"
    assert json.loads(run.arguments["--jobline_trigger_event"]) == {"order": 7}
    assert (run.execution_class, run.timeout, run.worker_type, run.number_of_workers) == ("FLEX", 10, "G.1X", 2)


def test_a_failed_glue_run_is_retried(backends: dict[str, Any], script: Script) -> None:
    deps = deps_for(backends, script, "glue-etl", retry={"attempts": 2, "interval_seconds": 0})
    script.outcomes = {1: "fail", 2: "succeed"}
    execution, row = run_to_end(backends, deps, start(deps))

    assert execution["status"] == "SUCCEEDED"
    assert (row["status"], row["attempt"]) == ("SUCCEEDED", 2)
    assert [r.arguments["--jobline_attempt"] for r in script.glue] == ["1", "2"]


def test_a_glue_run_that_times_out_ends_timeout(backends: dict[str, Any], script: Script) -> None:
    deps = deps_for(backends, script, "glue-etl", retry={"attempts": 2, "interval_seconds": 0})
    script.outcomes = {1: "timeout"}
    execution, row = run_to_end(backends, deps, start(deps))

    assert execution["status"] == "FAILED"
    assert (row["status"], row["reason"], row["attempt"]) == ("TIMEOUT", "Timeout", 1)
    assert len(script.glue) == 1


def test_a_glue_job_at_max_concurrent_runs_makes_the_run_wait_not_fail(
    backends: dict[str, Any], script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.stepfunctions.parser.asl.component.common.retry import jitter_strategy_decl

    # FULL jitter waits anywhere in [0, interval]: take the short end so the test stays quick.
    monkeypatch.setattr(jitter_strategy_decl.random, "uniform", lambda low, high: min(high, 1.0))
    deps = deps_for(backends, script, "glue-etl")
    glue = backends["session"].client("glue")
    script.outcomes = {0: "hold"}
    blocker = glue.start_job_run(JobName="jobline-example", Arguments={"--jobline_attempt": "0"})["JobRunId"]
    run_id = start(deps)

    def refused() -> bool:
        errors = [
            e["taskFailedEventDetails"]["error"] for e in history(backends, run_id) if "taskFailedEventDetails" in e
        ]
        return errors.count("Glue.ConcurrentRunsExceededException") >= 2

    wait_until(refused, timeout=30, what="StartJobRun to be refused and retried")
    assert deps.table.get_run(run_id)["status"] == "STARTING"
    assert [r.job_run_id for r in script.glue] == [blocker]
    next(r for r in script.glue if r.job_run_id == blocker).status = "SUCCEEDED"

    execution, row = run_to_end(backends, deps, run_id)
    assert execution["status"] == "SUCCEEDED"
    assert (row["status"], row["attempt"]) == ("SUCCEEDED", 1)


# ---------------------------------------------------------------- stopping
def test_stopping_an_execution_stops_its_processing_job_and_glue_run(backends: dict[str, Any], script: Script) -> None:
    sfn = backends["session"].client("stepfunctions")
    script.outcomes = {1: "hold"}
    for name, stopped in (("clean-data", "Stopping"), ("glue-etl", "STOPPING")):
        deps = deps_for(backends, script, name)
        run_id = start(deps, f"stop-{name}")
        jobs = script.processing if name == "clean-data" else script.glue
        wait_until(lambda j=jobs: j, timeout=30, what=f"the {name} job")
        arn = backends["settings"].state_machine_arn.replace(":stateMachine:", ":execution:") + f":{run_id}"
        sfn.stop_execution(executionArn=arn, error="Stopped", cause="test")
        status = (lambda j=jobs[-1]: j.processing_job_status) if name == "clean-data" else (lambda j=jobs[-1]: j.status)
        assert wait_until(lambda s=status, want=stopped: s() == want, timeout=10, what=f"{name} to be stopped")


def test_stopping_a_service_job_run_before_its_first_event_terminates_its_job(
    backends: dict[str, Any], script: Script
) -> None:
    deps = deps_for(backends, script, "train-model")
    run_id = start(deps, "stop-before-event")
    wait_until(lambda: deps.table.get_run(run_id).get("task_token_attempt") == 1, timeout=30, what="the token")
    (job,) = script.service
    assert "1" not in deps.table.get_run(run_id)["attempts"]  # no event yet: the job id is the row's

    (stopped,) = Operations(deps).stop_runs([run_id])["stopped"]
    assert stopped["terminated_backend_job"] == job.job_id
    assert (job.is_terminated, job.terminate_reason) == (True, "Stopped by user (jobline runs stop)")


def test_stopping_a_service_job_run_before_its_job_id_is_stored_finds_the_job(
    backends: dict[str, Any], script: Script
) -> None:
    deps = deps_for(backends, script, "train-model")
    held, release = [], threading.Event()

    def hold(job: Any) -> None:  # the submit is in flight: its response has not reached the execution
        held.append(job)
        release.wait(30)

    adaptations.set_hooks(service_job=hold)
    run_id = start(deps, "stop-in-flight")
    try:
        wait_until(lambda: held, timeout=30, what="the submit")
        assert "service_job_id" not in deps.table.get_run(run_id)
        (stopped,) = Operations(deps).stop_runs([run_id])["stopped"]
    finally:
        release.set()
    assert stopped["terminated_backend_job"] == held[0].job_id
    assert held[0].is_terminated
