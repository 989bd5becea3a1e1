"""Every backend's attempt as the submitter submits it, on moto with AWS's contracts (botocore's
models, names, payload limits, the clientToken rule): the attempt's own values in place, and a
submit whose response was lost found by the redelivery, never submitted twice."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobline.backends import BACKENDS
from jobline.deps import Deps
from jobline.submit import Outcome, SubmitDeferred, process_message
from tests.faults.injection import Injector, Rule, installed
from tests.unit.submitting import Stack, stack, time_left

__all__ = ["stack"]

SUBMIT_CALLS = {
    "word-count": ("batch", "SubmitJob"),
    "train-model": ("batch", "SubmitServiceJob"),
    "clean-data": ("sagemaker", "CreateProcessingJob"),
    "glue-etl": ("glue", "StartJobRun"),
}


def jobs_of(stack: Stack, job: str, run_id: str) -> dict[str, dict[str, Any]]:
    """The backend jobs of a run, by id: what the backend itself lists and describes."""
    if job == "word-count":
        return {j["jobId"]: j for j in stack.batch_jobs(run_id)}
    if job == "train-model":
        batch = stack.client("batch")
        listed = batch.list_service_jobs(
            jobQueue=stack.settings.service_job_queue_arn, filters=[{"name": "JOB_NAME", "values": [f"{run_id}-*"]}]
        )["jobSummaryList"]
        return {j["jobId"]: batch.describe_service_job(jobId=j["jobId"]) for j in listed}
    if job == "clean-data":
        sagemaker = stack.client("sagemaker")
        summaries = sagemaker.list_processing_jobs(NameContains=run_id)["ProcessingJobSummaries"]
        names = [j["ProcessingJobName"] for j in summaries]
        described = [sagemaker.describe_processing_job(ProcessingJobName=name) for name in names]
        return {j["ProcessingJobArn"]: j for j in described}
    runs = stack.client("glue").get_job_runs(JobName="jobline-example")["JobRuns"]
    return {r["Id"]: r for r in runs if r.get("Arguments", {}).get("--jobline_run_id") == run_id}


def attempt_values(job: str, described: dict[str, Any], stack: Stack) -> dict[str, str]:
    """What the attempt's job says of its run and attempt: its name (or Glue's arguments), the
    JOBLINE_ATTEMPT the job sees, its jobline:attempt tag."""
    if job == "word-count":
        environment = {e["name"]: e["value"] for e in described["container"]["environment"]}
        tag = described["tags"]["jobline:attempt"]
        return {"name": described["jobName"], "env": environment["JOBLINE_ATTEMPT"], "tag": tag}
    if job == "train-model":
        training = json.loads(described["serviceRequestPayload"])
        tags = {t["Key"]: t["Value"] for t in training["Tags"]}
        assert training["TrainingJobName"] == described["jobName"]
        assert described["tags"]["jobline:attempt"] == tags["jobline:attempt"]
        variable = training["Environment"]["JOBLINE_ATTEMPT"]
        return {"name": described["jobName"], "env": variable, "tag": tags["jobline:attempt"]}
    if job == "clean-data":
        tags = stack.client("sagemaker").list_tags(ResourceArn=described["ProcessingJobArn"])["Tags"]
        tag = {t["Key"]: t["Value"] for t in tags}["jobline:attempt"]
        return {"name": described["ProcessingJobName"], "env": described["Environment"]["JOBLINE_ATTEMPT"], "tag": tag}
    arguments = described["Arguments"]
    name = f"{arguments['--jobline_run_id']}-{arguments['--jobline_attempt']}"
    return {"name": name, "env": arguments["--jobline_attempt"], "tag": arguments["--jobline_attempt"]}


@pytest.mark.parametrize("job", sorted(SUBMIT_CALLS))
def test_each_backend_submits_the_attempt_with_its_own_values(stack: Stack, job: str) -> None:
    run_id = stack.start(job)
    body = json.loads(stack.message(run_id))
    body["retry_count"] = 1  # a skipped number: the row makes it attempt 1
    assert process_message(stack.submitter(), json.dumps(body), time_left()) == Outcome.SUBMITTED
    ((job_id, described),) = jobs_of(stack, job, run_id).items()
    assert attempt_values(job, described, stack) == {"name": f"{run_id}-1", "env": "1", "tag": "1"}
    assert stack.row(run_id)["attempts"]["1"]["backend_job_id"] == job_id
    ticket = stack.table.attempt_ticket(run_id, 1)
    assert ticket is not None
    assert ticket["backend"] == stack.catalog.get(job).backend.type


@pytest.mark.parametrize("job", sorted(SUBMIT_CALLS))
def test_each_backend_finds_an_attempt_whose_submit_response_was_lost(stack: Stack, job: str) -> None:
    service, operation = SUBMIT_CALLS[job]
    run_id = stack.start(job)
    body = stack.message(run_id)
    injector = Injector(rules=[Rule(service, operation, 1, "lost_response")])
    with installed(injector), injector.handling(), pytest.raises(SubmitDeferred):
        process_message(stack.submitter(), body, time_left())
    assert injector.fired == 1
    (job_id,) = jobs_of(stack, job, run_id)
    stack.clock.advance(60)  # the redelivery, after the visibility timeout
    assert process_message(stack.submitter(), body, time_left()) == Outcome.FOUND
    assert list(jobs_of(stack, job, run_id)) == [job_id]
    assert stack.row(run_id)["attempts"]["1"]["backend_job_id"] == job_id


@pytest.mark.parametrize("job", sorted(SUBMIT_CALLS))
def test_each_backend_resubmit_of_an_existing_attempt_is_that_attempt(stack: Stack, job: str) -> None:
    """Were the job's listing behind (a lookup that misses a just-created job), the submit itself
    answers with the attempt's job: the service job's clientToken, SageMaker's unique name. Batch
    and Glue take no token: for them the lookup is the only guard, so it runs before every resubmit."""
    run_id = stack.start(job)
    body = json.loads(stack.message(run_id))
    backend = BACKENDS[body["request"]["backend"]]
    params = body["request"]["params"]
    first = backend.submit(params, run_id, 1, stack.client)
    if job in ("train-model", "clean-data"):
        assert backend.submit(params, run_id, 1, stack.client) == first
        assert list(jobs_of(stack, job, run_id)) == [first]
    assert backend.find_submitted(params, run_id, 1, stack.client) == first
    assert backend.find_submitted(params, run_id, 2, stack.client) is None


@pytest.mark.parametrize("job", ["clean-data", "glue-etl"])
def test_stopping_a_run_stops_its_attempts_job_the_execution_does_not(stack: Stack, job: str) -> None:
    """No .sync integration any more: stopping the execution leaves the job going, jobline's stop
    (jobline.operations) asks the backend to stop the attempt's job."""
    run_id = stack.start(job)
    assert process_message(stack.submitter(), stack.message(run_id), time_left()) == Outcome.SUBMITTED
    row = stack.row(run_id)
    backend = BACKENDS[row["backend"]]
    deps = Deps.build(stack.settings, stack.catalog, session=stack.session)
    ((job_id, _),) = jobs_of(stack, job, run_id).items()
    assert backend.stop(row, 1, row["attempts"]["1"], "Stopped by user", deps) == job_id
    ((_, described),) = jobs_of(stack, job, run_id).items()
    status = described.get("ProcessingJobStatus", described.get("JobRunState"))
    assert status in ("Stopping", "Stopped", "STOPPING", "STOPPED")
