"""Glue job runs: catalog checks, run input, status mapping, tracing events through arguments."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from jobline.backends.glue import BACKEND as GLUE
from jobline.backends.glue import GLUE_RANK, GLUE_STATUS
from jobline.catalog import parse_catalog
from jobline.dal import RunTable
from jobline.errors import CatalogError
from jobline.state_changes import NOT_JOBLINE, apply_state_change
from jobline.status import RunStatus
from jobline_local.contracts.validation import violations_of
from tests.unit.backends.conftest import job, parse, request, sent_requests, start_row, submit_params
from tests.unit.conftest import sample


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (job("glue-etl", {"type": "glue", "arguments": {"--db_password": "x"}}), "looks like a secret"),
        (job("glue-etl", {"type": "glue", "arguments": {"mode": "x"}}), "must look like --name"),
    ],
)
def test_glue_arguments_are_checked_before_anything_runs(spec: dict[str, Any], expected: str) -> None:
    with pytest.raises(CatalogError, match=expected):
        parse_catalog({"jobs": [spec]})


def test_glue_input() -> None:
    glue = submit_params(request("glue-etl"), {"day": "x"})
    assert glue["JobName"] == "jobline-example"
    assert glue["Arguments"]["--mode"] == "full"
    assert glue["Arguments"]["--jobline_job_name"] == "glue-etl"
    assert (glue["WorkerType"], glue["NumberOfWorkers"], glue["Timeout"]) == ("G.2X", 4, 60)


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
        apply_state_change(parse(event), table, glue, None)
    row = table.get_run(run_id)
    assert row is not None
    assert (row["status"], row["reason"], row["backend_status"]) == ("FAILED", "JobFailed", "FAILED")
    assert row["attempts"]["1"]["backend_job_id"] == glue_run

    foreign = glue.start_job_run(JobName="jobline-example")["JobRunId"]
    failed["detail"]["jobRunId"] = foreign
    assert apply_state_change(parse(failed), table, glue, None) == NOT_JOBLINE


def test_the_status_mapping_covers_every_glue_state() -> None:
    assert all(isinstance(run_status, RunStatus) for run_status, _ in GLUE_STATUS.values())
    assert set(GLUE_STATUS) == set(GLUE_RANK)


@pytest.mark.parametrize(
    ("backend", "capacity"),
    [
        ({"type": "glue", "max_capacity": 0.0625}, {"MaxCapacity": 0.0625}),
        ({"type": "glue", "max_capacity": 1}, {"MaxCapacity": 1.0}),
        (
            {"type": "glue", "worker_type": "G.2X", "number_of_workers": 4},
            {"WorkerType": "G.2X", "NumberOfWorkers": 4, "ExecutionClass": "STANDARD"},
        ),
    ],
)
def test_python_shell_jobs_send_max_capacity_only_and_spark_jobs_workers_only(
    table: RunTable, backend: dict[str, Any], capacity: dict[str, Any]
) -> None:
    req = request("glue-etl", backend=backend)
    params = submit_params(req)
    glue = boto3.client("glue", region_name="us-east-1")
    glue.create_job(Name="jobline-example", Role="r", Command={"Name": "glueetl", "ScriptLocation": "s3://b/s.py"})
    sent = sent_requests(glue, "StartJobRun")
    GLUE.submit(params, req.run_id, 2, lambda _: glue)
    (start,) = sent
    assert {k: v for k, v in start.items() if k not in ("JobName", "Arguments", "Timeout")} == capacity
    assert start["Arguments"]["--jobline_attempt"] == "2"
    assert start["Arguments"]["--jobline_run_id"] == req.run_id
    assert violations_of("glue", "StartJobRun", start) == []  # botocore's model of the request


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ({"max_capacity": 0.5}, "Input should be 0.0625 or 1.0"),
        ({"max_capacity": 2}, "Input should be 0.0625 or 1.0"),
        ({"max_capacity": 1, "worker_type": "G.1X"}, "max_capacity (a Python shell job's DPUs) and worker_type"),
        ({"max_capacity": 1, "number_of_workers": 2, "execution_class": "FLEX"}, "number_of_workers, execution_class"),
    ],
)
def test_max_capacity_is_a_python_shell_size_and_excludes_the_spark_settings(
    backend: dict[str, Any], expected: str
) -> None:
    with pytest.raises(CatalogError) as error:
        parse_catalog({"jobs": [job("glue-etl", {"type": "glue", **backend})]})
    (problem,) = error.value.problems
    assert problem.job == "glue-etl"
    assert problem.field.startswith("backend")
    assert expected in problem.rule
