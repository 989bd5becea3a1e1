"""Glue's MaxConcurrentRuns: StartJobRun past it fails with ConcurrentRunsExceededException.
moto 5.2.5 counts only STARTING and RUNNING runs; jobline_local.emulated.glue
counts every unfinished one (WAITING, STARTING, RUNNING, STOPPING), as Glue does."""

from __future__ import annotations

from typing import Any

from boto3.session import Session

from jobline_local import adaptations
from tests.local.conftest import client, refusal


def test_a_run_over_max_concurrent_runs_is_refused(aws: Session, monkeypatch: Any) -> None:
    runs: list[Any] = []
    monkeypatch.setitem(adaptations.hooks, "glue_job_run", lambda job, run: runs.append(run))  # left running
    glue = client(aws, "glue")
    glue.create_job(
        Name="etl",
        Role="arn:aws:iam::123456789012:role/glue",
        Command={"Name": "glueetl"},
        ExecutionProperty={"MaxConcurrentRuns": 2},
    )
    glue.start_job_run(JobName="etl")
    glue.start_job_run(JobName="etl")
    runs[0].status = "STOPPING"  # still unfinished: still counts
    error = refusal(glue.start_job_run, JobName="etl")
    assert (error["code"], error["status"]) == ("ConcurrentRunsExceededException", 400)
    runs[0].status = "STOPPED"
    assert glue.start_job_run(JobName="etl")["JobRunId"]
