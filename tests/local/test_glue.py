"""Glue job runs (emulated.glue): the API adaptation against moto's original, and the local
compute's statuses, limits, stops and events."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from jobline.backends.glue import map_glue_state
from jobline_local.emulated import glue as glue_module
from tests.aws_resources import REGION
from tests.local.moto_support import ACCOUNT, client, make_glue_job, original
from tests.waiting import wait_until


def test_glue_job_runs(adapted: dict[str, Any]) -> None:
    from moto.glue.models import FakeJob, GlueBackend
    from moto.glue.responses import GlueResponse

    assert original(GlueBackend, "batch_stop_job_run") is None, "moto now implements BatchStopJobRun"
    assert original(GlueResponse, "batch_stop_job_run") is None
    with mock_aws():
        make_glue_job(max_runs=1)
        glue = client("glue")
        from moto.glue.models import glue_backends

        job = glue_backends[ACCOUNT][REGION].get_job("g")
        first = glue.start_job_run(JobName="g")["JobRunId"]
        job.job_runs[0].status = "STOPPING"
        second = original(FakeJob, "start_job_run")(job, None, None, None, None, None, None, None, None, None)
        assert second, "moto now counts a STOPPING run against MaxConcurrentRuns"
        job.job_runs.pop()

        with pytest.raises(ClientError) as caught:
            glue.start_job_run(JobName="g")
        assert caught.value.response["Error"]["Code"] == "ConcurrentRunsExceededException"
        job.job_runs[0].status = "STOPPED"

        handed: list[Any] = []
        adapted["glue_job_run"] = lambda glue_job, run: handed.append(run)
        run_id = glue.start_job_run(JobName="g", ExecutionClass="FLEX", Arguments={"--a": "1"})["JobRunId"]
        for _ in range(3):
            run = glue.get_job_run(JobName="g", RunId=run_id)["JobRun"]
        assert run["JobRunState"] == "STARTING", "a run held by the local stack moved by itself"
        assert (run["ExecutionClass"], run["Arguments"]) == ("FLEX", {"--a": "1"})
        assert "CompletedOn" not in run
        result = glue.batch_stop_job_run(JobName="g", JobRunIds=[run_id, first, "jr_nope"])
        assert result["SuccessfulSubmissions"] == [{"JobName": "g", "JobRunId": run_id}]
        assert [e["ErrorDetail"]["ErrorCode"] for e in result["Errors"]] == [
            "InvalidInputException",
            "EntityNotFoundException",
        ]
        assert handed[0].status == "STOPPING"  # the local stand-in ends it
        handed[0].status, handed[0].error_message = "FAILED", "ZeroDivisionError"
        handed[0].completed_on = handed[0].started_on
        run = glue.get_job_run(JobName="g", RunId=run_id)["JobRun"]
        assert (run["JobRunState"], run["ErrorMessage"]) == ("FAILED", "ZeroDivisionError")
        assert "CompletedOn" in run


# ---------------------------------------------------------------- the local compute
def start_glue(monkeypatch: pytest.MonkeyPatch, **arguments: str) -> str:
    glue = boto3.client("glue", region_name=REGION)
    if "etl" not in glue.list_jobs()["JobNames"]:
        glue.create_job(
            Name="etl",
            Role="r",
            Command={"Name": "glueetl", "ScriptLocation": "s3://b/etl.py"},
            DefaultArguments={"--bucket": "data"},
            ExecutionProperty={"MaxConcurrentRuns": 5},
            NotificationProperty={"NotifyDelayAfter": 1},
            Timeout=1,
        )
    args = {"--jobline_job_name": "etl", "--jobline_attempt": "1", **{f"--{k}": v for k, v in arguments.items()}}
    return glue.start_job_run(JobName="etl", Arguments=args)["JobRunId"]


def glue_ended(run_id: str) -> dict[str, Any]:
    glue = boto3.client("glue", region_name=REGION)
    terminal = ("SUCCEEDED", "FAILED", "TIMEOUT", "STOPPED", "ERROR")
    return wait_until(
        lambda: (run := glue.get_job_run(JobName="etl", RunId=run_id)["JobRun"])["JobRunState"] in terminal and run
    )


def test_glue_runs_succeed_fail_time_out_and_stop(local: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(glue_module, "SECONDS_PER_MINUTE", 1.5)  # Timeout=1 minute -> 1.5 s here
    ok = start_glue(monkeypatch, seconds="0.5")
    failing = start_glue(monkeypatch, exit="1")
    slow = start_glue(monkeypatch, seconds="30")
    stopped = start_glue(monkeypatch, seconds="30")
    # Stopped once it has outlived NotifyDelayAfter (the compute checks it every POLL_SECONDS).
    wait_until(lambda: stopped in {d.jobRunId for d in local["events"].of("Glue Job Run Status")})
    result = boto3.client("glue", region_name=REGION).batch_stop_job_run(JobName="etl", JobRunIds=[stopped])
    assert result["SuccessfulSubmissions"] == [{"JobName": "etl", "JobRunId": stopped}]

    assert glue_ended(ok)["JobRunState"] == "SUCCEEDED"
    assert glue_ended(failing)["ErrorMessage"] == "ValueError: bad row"
    assert glue_ended(slow)["JobRunState"] == "TIMEOUT"
    assert glue_ended(stopped)["JobRunState"] == "STOPPED"
    argv = (local["logs"] / f"{ok}.log").read_text().splitlines()[0]
    for expected in ("'--JOB_RUN_ID', '" + ok, "'--JOB_NAME', 'etl'", "'--bucket', 'data'", "'--jobline_attempt', '1'"):
        assert expected in argv

    changes = {d.jobRunId: d for d in local["events"].of("Glue Job State Change")}
    assert {r: (changes[r].state, map_glue_state(changes[r].state)[0].value) for r in (ok, failing, slow, stopped)} == {
        ok: ("SUCCEEDED", "SUCCEEDED"),
        failing: ("FAILED", "FAILED"),
        slow: ("TIMEOUT", "TIMEOUT"),
        stopped: ("STOPPED", "STOPPED"),
    }
    assert changes[failing].message == "ValueError: bad row"
    # NotifyDelayAfter (1 minute, at 600x): runs still going after it say so once.
    running = {d.jobRunId for d in local["events"].of("Glue Job Run Status") if d.state == "RUNNING"}
    assert {slow, stopped} <= running
