"""Stop and retry against the real run.asl.json on moto's Step Functions engine (the integration
fixtures): a stopped run ends STOPPED, its execution is aborted, its Batch job terminated and its
concurrency slot freed, so the run waiting for that slot goes ahead; its retry runs to the end."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from moto.batch.utils import JobStatus
from moto.batch_simple.models import BatchSimpleBackend

from jobline.backends import Observation
from jobline.operations import Operations
from jobline.state_changes import apply_observation
from tests.aws_resources import job_spec
from tests.integration import conftest as integration
from tests.integration.conftest import BatchScript, make_deps, wait_for_execution
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
# The integration fixtures: the real ASL on moto's engine, moto's Batch ended by a script.
stack = integration.stack
batch_script = integration.batch_script


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch, batch_script: BatchScript) -> list[Any]:
    """The first Batch job submitted keeps running; later ones end as the script says."""
    jobs: list[Any] = []

    def finish(backend: BatchSimpleBackend, job: Any) -> None:
        if jobs:
            batch_script.finish(backend, job)
            return
        backend.backend._jobs[job.job_id] = job
        job.job_started_at = datetime.now()
        job._start_attempt()
        job.status = JobStatus.RUNNING
        jobs.append(job)

    monkeypatch.setattr(
        BatchSimpleBackend, "_mark_job_as_finished", lambda self, include_start_attempt, job: finish(self, job)
    )
    return jobs


def test_stop_ends_a_running_run_and_hands_its_slot_to_the_waiting_run(stack: dict[str, Any], held: list[Any]) -> None:
    ops = Operations(make_deps(stack, [job_spec(max_concurrent_runs=1, parameters={"day": {"default": "x"}})]))
    sfn, ddb = stack["session"].client("stepfunctions"), stack["session"].client("dynamodb")
    running = ops.start_run("word-count", {"day": "2026-11-20"}, "running")["run_id"]
    (job,) = wait_until(lambda: held, what="the first run's Batch job")
    # What the state change handler records when Batch reports the job RUNNING.
    observed = {"attempt": 1, "backend_status": "RUNNING", "status": "RUNNING", "reason": "Running", "rank": 4}
    observed.update(event_time="2030-01-01T00:00:00.000Z", backend_job_id=job.job_id)
    apply_observation(Observation(running, 1, observed), ops._table, None)
    waiting = ops.start_run("word-count", {}, "waiting")["run_id"]
    wait_until(
        lambda: ops.get_run(waiting)["reason"] == "Waiting for a concurrency slot", what="the second run to wait"
    )

    result = ops.stop_runs([running])

    assert result["errors"] == []
    (stopped,) = result["stopped"]
    assert (stopped["run_id"], stopped["terminated_backend_job"]) == (running, job.job_id)
    run = ops.get_run(running)
    assert (run["status"], run["reason"], run["attempt"]) == ("STOPPED", "Stopped by user", 1)
    execution = run["execution_arn"]
    wait_until(lambda: sfn.describe_execution(executionArn=execution)["status"] == "ABORTED", what="ABORTED")
    assert (job.stop, job.job_stopped_reason) == (True, "Stopped by user (jobline runs stop)")
    holders = ddb.get_item(TableName="runs", Key={"pk": {"S": "SLOT#word-count"}})["Item"].get("holders", {})
    assert running not in holders.get("SS", [])

    assert wait_for_execution(stack, waiting, timeout=40)["status"] == "SUCCEEDED"
    assert ops.get_run(waiting)["status"] == "SUCCEEDED"
    assert ops.get_run(running)["status"] == "STOPPED"  # the aborted execution wrote nothing after the stop

    retried = ops.retry_run(running, "again")
    assert wait_for_execution(stack, retried["run_id"], timeout=40)["status"] == "SUCCEEDED"
    retry = ops.get_run(retried["run_id"])
    assert (retry["status"], retry["retry_of"], retry["arguments"]) == ("SUCCEEDED", running, {"day": "2026-11-20"})
    assert retry["trigger"]["type"] == "retry"
