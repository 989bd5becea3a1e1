"""Batch jobs' adaptations (emulated.batch), each against moto's original."""

from __future__ import annotations

from typing import Any

from moto import mock_aws

from jobline_local.adaptations import hooks
from tests.aws_resources import REGION
from tests.local.moto_support import client, finish, make_batch, original


def test_batch_job_start() -> None:
    from moto.batch.models import Job

    assert original(Job, "start") is Job.__mro__[1].start, "moto's Job no longer runs on its own thread"
    handed: list[Any] = []
    hooks["batch_job"] = handed.append
    with mock_aws():
        queue, definition = make_batch()
        job_id = client("batch").submit_job(jobName="job-1", jobQueue=queue, jobDefinition=definition)["jobId"]
        assert [job.job_id for job in handed] == [job_id]
        assert handed[0].ident is None, "moto started its own thread for the job"
        assert client("batch").describe_jobs(jobs=[job_id])["jobs"][0]["status"] == "SUBMITTED"


def test_batch_job_description() -> None:
    from moto.batch.models import Job

    hooks["batch_job"] = lambda job: None
    with mock_aws():
        queue, definition = make_batch()
        batch = client("batch")
        job_id = batch.submit_job(
            jobName="job-1",
            jobQueue=queue,
            jobDefinition=definition,
            containerOverrides={"environment": [{"name": "A", "value": "1"}]},
        )["jobId"]
        from moto.batch.models import batch_backends

        job = batch_backends["123456789012"][REGION].get_job_by_id(job_id)
        pristine = original(Job, "_get_container_property")
        sizes = [len(pristine(job, "environment", [])) for _ in range(2)]
        assert sizes[1] > sizes[0], "moto no longer grows the overrides on each describe"

        job.container_overrides["environment"] = [{"name": "A", "value": "1"}]
        described = [batch.describe_jobs(jobs=[job_id])["jobs"][0]["container"]["environment"] for _ in range(3)]
        assert described[0] == described[2]
        assert {e["name"] for e in described[0]} == {"A", "FROM_DEFINITION", "AWS_BATCH_JOB_ID"}

        finish(job, 3)
        job.container_reason = "exited"
        container = batch.describe_jobs(jobs=[job_id])["jobs"][0]["container"]
        assert container["exitCode"] == 3
        assert container["reason"] == "exited"
        assert "exitCode" not in original(Job, "_container_details")(job), "moto now reports exitCode itself"
