"""Batch jobs' adaptations (emulated.batch), each against moto's original."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from moto import mock_aws

from jobline_local.activity import Activity
from jobline_local.adaptations import hooks
from jobline_local.emulated.batch import JOB_TAG, LocalBatch
from tests.aws_resources import REGION
from tests.local.conftest import Clients
from tests.local.moto_support import ACCOUNT, client, finish, make_batch, original
from tests.waiting import wait_until


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


def test_job_slots_stand_for_the_compute_environment(tmp_path: Path) -> None:
    """Jobs beyond the local compute's slots stay RUNNABLE until one ends, as jobs wait for a
    compute environment's capacity (Batch user guide, job states: RUNNABLE "...waiting for
    sufficient resources")."""
    gate = "import os, time\nwhile not os.path.exists(os.environ['GATE']): time.sleep(0.05)"
    job = {
        "name": "hold",
        "description": "Waits for its gate file.",
        "backend": {"type": "batch", "capacity": "on_demand", "vcpu": 0.25, "memory_mib": 512},
        "local_command": [sys.executable, "-c", gate],
    }
    (tmp_path / "jobs.yaml").write_text(json.dumps({"jobs": [job]}))
    with mock_aws():
        queue, definition = make_batch()
        local = LocalBatch(
            ACCOUNT, REGION, tmp_path / "jobs.yaml", tmp_path / "logs", dict(os.environ), Clients(), Activity(), slots=1
        )
        hooks["batch_job"] = local.submit
        batch = client("batch")

        def submit(name: str) -> str:
            environment = [{"name": "GATE", "value": str(tmp_path / name)}]
            return batch.submit_job(
                jobName=name,
                jobQueue=queue,
                jobDefinition=definition,
                containerOverrides={"environment": environment},
                tags={JOB_TAG: "hold"},
            )["jobId"]

        def status(job_id: str) -> str:
            return batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"]

        try:
            first, second = submit("job-a"), submit("job-b")
            wait_until(lambda: status(first) == "RUNNING", 60, "the first job to run")
            wait_until(lambda: status(second) == "RUNNABLE", 60, "the second job to wait")
            time.sleep(0.5)  # the slot is held: the second job does not start meanwhile
            assert status(second) == "RUNNABLE"
            (tmp_path / "job-a").touch()
            wait_until(lambda: status(first) == "SUCCEEDED", 60, "the first job to end")
            wait_until(lambda: status(second) == "RUNNING", 60, "the second job to take the slot")
            (tmp_path / "job-b").touch()
            wait_until(lambda: status(second) == "SUCCEEDED", 60, "the second job to end")
        finally:
            local.stop()
