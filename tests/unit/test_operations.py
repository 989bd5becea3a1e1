"""jobline.operations on moto: the catalog, manual runs, run detail, stop and retry, and bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from jobline import operations
from jobline import settings as settings_module
from jobline.backends import Observation
from jobline.errors import InvalidArguments, UnknownJobError
from jobline.operations import Operations, get_operations
from jobline.operator_errors import Conflict, InvalidRequest, JobNotFound, RunNotFound
from jobline.slots import Slots
from jobline.state_changes import apply_observation
from jobline.triggers import RunRequest, Trigger
from tests.unit.conftest import put_row, run_executions

pytestmark = pytest.mark.usefixtures("env")


@pytest.fixture
def ops(monkeypatch: pytest.MonkeyPatch) -> Iterator[Operations]:
    monkeypatch.setenv("JOB_LOG_GROUP_NAME", "/aws/batch/jobline")
    settings_module.get_settings.cache_clear()
    operations.get_operations.cache_clear()
    yield get_operations()
    operations.get_operations.cache_clear()


def executions(env: dict[str, Any]) -> list[dict[str, Any]]:
    return run_executions(env)


def observe(ops: Operations, run_id: str, status: str, **fields: Any) -> None:
    """What the state change handler writes for attempt 1 of a run (Batch job `job-1`)."""
    observed = {
        "attempt": 1,
        "backend_status": status,
        "status": status,
        "reason": "Running",
        "rank": 4,
        "event_time": "2026-11-20T08:00:05.000Z",
        "backend_job_id": "job-1",
        "log_stream": "jobline/default/abc123",
        **fields,
    }
    apply_observation(Observation(run_id, 1, observed), ops._table, None)


# ---------------------------------------------------------------- the catalog
def test_list_jobs_names_every_job_with_its_triggers_and_parameters(ops: Operations) -> None:
    jobs = {job["name"]: job for job in ops.list_jobs()}
    assert set(jobs) == {"csv-word-count", "nightly-report"}
    assert jobs["nightly-report"]["triggers"] == ["bus", "schedule"]
    assert jobs["nightly-report"]["parameters"] == ["day"]
    assert jobs["csv-word-count"]["backend"] == "batch"


def test_show_job_is_the_declared_job_and_an_unknown_one_is_not_found(ops: Operations) -> None:
    job = ops.show_job("nightly-report")
    assert job["name"] == "nightly-report"
    assert job["parameters"]["day"]["default"] == ""
    assert job["triggers"]["schedule"][0]["name"] == "nightly"
    with pytest.raises(JobNotFound, match="unknown job 'nope'"):
        ops.show_job("nope")


# ---------------------------------------------------------------- start
def test_a_manual_run_is_started_once_per_client_token(ops: Operations, env: dict[str, Any]) -> None:
    first = ops.start_run("nightly-report", {"day": "2026-11-20"}, "token-1", requested_by="ada")
    again = ops.start_run("nightly-report", {"day": "2026-11-20"}, "token-1", requested_by="ada")
    other = ops.start_run("nightly-report", {"day": "2026-11-20"}, "token-2")

    assert (first["created"], again["created"], other["created"]) == (True, False, True)
    assert first["run_id"] == again["run_id"] != other["run_id"]
    assert sorted(e["name"] for e in executions(env)) == sorted([first["run_id"], other["run_id"]])
    row, data = ops._table.get_run_and_data(first["run_id"])
    assert row["trigger"] == {"type": "manual", "source": "manual by ada"}
    assert data["trigger_key"] == "manual:token-1"  # cold data: the hot row stays small
    assert ops.get_run(first["run_id"])["trigger"]["key"] == "manual:token-1"
    assert json.loads(data["event"])["parameters"] == {"day": "2026-11-20"}
    assert data["arguments"] == {"day": "2026-11-20"}


def test_without_a_client_token_each_start_is_a_new_run(ops: Operations) -> None:
    first, second = ops.start_run("csv-word-count", {}), ops.start_run("csv-word-count", {})
    assert first["run_id"] != second["run_id"]
    assert len(first["client_token"]) == 32


def test_a_client_token_reused_with_other_parameters_is_a_conflict(ops: Operations, env: dict[str, Any]) -> None:
    ops.start_run("nightly-report", {"day": "2026-11-20"}, "token-1")
    with pytest.raises(Conflict, match=r"client token 'token-1' already started run .* with other parameters"):
        ops.start_run("nightly-report", {"day": "2026-11-21"}, "token-1")
    assert len(executions(env)) == 1


@pytest.mark.parametrize(
    ("job", "parameters", "token", "error", "message"),
    [
        ("nope", {}, None, UnknownJobError, "unknown job 'nope'"),
        ("csv-word-count", {"colour": "red"}, None, InvalidArguments, r"does not declare parameters \['colour'\]"),
        ("nightly-report", {"day": "x" * 2000}, None, InvalidArguments, "over its max_length 1024"),
        ("csv-word-count", {}, "spaces are not allowed", InvalidRequest, "client_token must be 1 to 128"),
        ("csv-word-count", {}, "x" * 129, InvalidRequest, "client_token must be 1 to 128"),
    ],
)
def test_a_bad_start_is_refused_and_starts_nothing(
    ops: Operations,
    env: dict[str, Any],
    job: str,
    parameters: dict[str, str],
    token: str | None,
    error: type,
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        ops.start_run(job, parameters, token)
    assert executions(env) == []


# ---------------------------------------------------------------- get
def test_get_run_has_status_attempts_trigger_arguments_and_links(ops: Operations) -> None:
    run_id = ops.start_run("nightly-report", {"day": "2026-11-20"}, "token-1")["run_id"]
    arn = f"arn:aws:states:us-east-1:123456789012:execution:run:{run_id}"
    put_row(ops._table, run_id, execution_arn=arn)
    observe(ops, run_id, "RUNNING", started_at="2026-11-20T08:00:04.000Z")

    run = ops.get_run(run_id)

    assert (run["status"], run["reason"], run["attempt"], run["max_attempts"]) == ("RUNNING", "Running", 1, 1)
    assert run["arguments"] == {"day": "2026-11-20"}
    assert run["trigger"]["type"] == "manual"
    assert run["trigger"]["event"] == {
        "job": "nightly-report",
        "parameters": {"day": "2026-11-20"},
        "client_token": "token-1",
    }
    assert run["started_at"] == "2026-11-20T08:00:04.000Z"
    assert run["execution_arn"] == arn
    assert run["links"]["execution"].endswith(f"#/v2/executions/details/{arn}")
    (attempt,) = run["attempts"]
    assert (attempt["attempt"], attempt["backend_job_id"], attempt["log_stream"]) == (
        1,
        "job-1",
        "jobline/default/abc123",
    )
    assert attempt["links"]["backend_job"].endswith("/batch/home?region=us-east-1#jobs/detail/job-1")
    assert attempt["links"]["log"].endswith(
        "#logsV2:log-groups/log-group/$252Faws$252Fbatch$252Fjobline/log-events/jobline$252Fdefault$252Fabc123"
    )


@pytest.mark.parametrize("run_id", ["csv-word-count-00000000000000000000", "not a run id", "x" * 3000])
def test_an_unknown_run_is_not_found(ops: Operations, run_id: str) -> None:
    with pytest.raises(RunNotFound, match="no run"):
        ops.get_run(run_id)


# ---------------------------------------------------------------- stop
def test_stop_ends_a_live_run_stopped_and_leaves_its_slot_to_the_stream(ops: Operations, env: dict[str, Any]) -> None:
    ddb = env["session"].client("dynamodb")
    run_id = ops.start_run("csv-word-count", {}, "token-1")["run_id"]
    # As the row of a job with max_concurrent_runs carries them.
    before = put_row(ops._table, run_id, slot_job="csv-word-count", slot_max=2)
    slot = {"pk": {"S": "SLOT#csv-word-count"}}
    holders = {run_id: {"S": "t1"}, "csv-word-count-other": {"S": "t0"}}
    ddb.put_item(TableName="runs", Item={**slot, "holders": {"M": holders}})

    result = ops.stop_runs([run_id])

    assert result["errors"] == []
    (stopped,) = result["stopped"]
    assert (stopped["run_id"], stopped["status"], stopped["reason"]) == (run_id, "STOPPED", "Stopped by user")
    row = ops._table.get_run(run_id)
    assert (row["status"], row["reason"], row["status_rank"]) == ("STOPPED", "Stopped by user", 30)
    assert row["ended_at"] == row["updated_at"] == stopped["ended_at"]
    (execution,) = executions(env)
    assert execution["status"] == "ABORTED"
    # The stop writes the row only; the stream's record of the run's end releases its slot.
    assert ddb.get_item(TableName="runs", Key=slot)["Item"]["holders"] == {"M": holders}
    slots = Slots(ops._table, env["session"].client("stepfunctions"))
    assert slots.on_change(before, row) == [f"{run_id}'s slot released"]
    assert ddb.get_item(TableName="runs", Key=slot)["Item"]["holders"] == {"M": {"csv-word-count-other": {"S": "t0"}}}


def test_stop_reports_each_bad_id_and_stops_the_rest(ops: Operations) -> None:
    live = ops.start_run("csv-word-count", {}, "live")["run_id"]
    done = ops.start_run("csv-word-count", {}, "done")["run_id"]
    put_row(ops._table, done, status="SUCCEEDED", reason="Completed", status_rank=30)
    unknown = "csv-word-count-ffffffffffffffffffff"

    result = ops.stop_runs([unknown, done, live, live])

    assert [run["run_id"] for run in result["stopped"]] == [live]
    assert result["errors"] == [
        {"run_id": unknown, "code": "NotFound", "message": RunNotFound(unknown).args[0]},
        {"run_id": done, "code": "AlreadyFinished", "message": "already SUCCEEDED"},
    ]
    assert ops._table.get_run(done)["status"] == "SUCCEEDED"


def test_stop_terminates_the_current_attempts_batch_job(ops: Operations) -> None:
    run_id = ops.start_run("csv-word-count", {}, "token-1")["run_id"]
    observe(ops, run_id, "RUNNING")

    (stopped,) = ops.stop_runs([run_id])["stopped"]

    assert (stopped["status"], stopped["terminated_backend_job"]) == ("STOPPED", "job-1")


def test_a_batch_job_that_cannot_be_terminated_leaves_the_run_stopped_with_a_warning(ops: Operations) -> None:
    run_id = ops.start_run("csv-word-count", {}, "token-1")["run_id"]
    observe(ops, run_id, "RUNNING")
    with Stubber(ops._deps.client("batch")) as batch:
        batch.add_client_error("terminate_job", "ClientException", "no such job", expected_params=None)
        (stopped,) = ops.stop_runs([run_id])["stopped"]

    assert stopped["status"] == "STOPPED"
    assert "terminating backend job job-1 failed" in stopped["warning"]
    assert "no such job" in stopped["warning"]


@pytest.mark.parametrize("count", [0, 26])
def test_stop_takes_1_to_25_ids(ops: Operations, count: int) -> None:
    with pytest.raises(InvalidRequest, match=f"stop takes 1 to 25 run ids per call, got {count}"):
        ops.stop_runs([f"csv-word-count-{i:020x}" for i in range(count)])


# ---------------------------------------------------------------- retry
def test_retry_starts_the_same_job_arguments_and_event_and_names_the_previous_run(
    ops: Operations, env: dict[str, Any]
) -> None:
    first = ops.start_run("nightly-report", {"day": "2026-11-20"}, "token-1")["run_id"]
    ops.stop_runs([first])

    retried = ops.retry_run(first, "again-1")
    repeated = ops.retry_run(first, "again-1")

    assert retried == {**repeated, "created": True}
    assert (retried["created"], repeated["created"], retried["retry_of"]) == (True, False, first)
    (old, old_data), (new, new_data) = (ops._table.get_run_and_data(r) for r in (first, retried["run_id"]))
    assert new_data["retry_of"] == first
    assert new["job"] == old["job"]
    assert new_data["arguments"] == old_data["arguments"] == {"day": "2026-11-20"}
    assert new["trigger"]["type"] == "retry"
    assert new_data["trigger_key"] == f"retry:{first}:again-1"
    assert json.loads(new_data["event"]) == json.loads(old_data["event"])
    assert ops.get_run(retried["run_id"])["retry_of"] == first
    listed = {run["run_id"]: run for run in ops.list_runs(job="nightly-report")["runs"]}
    assert listed[retried["run_id"]]["retry_of"] == new["retry_of"] == first  # from the hot row
    assert "retry_of" not in listed[first]
    assert len(executions(env)) == 2


def test_retry_of_a_run_whose_event_travelled_through_s3_reads_it_back(ops: Operations, env: dict[str, Any]) -> None:
    event = {"detail": {"note": "x" * 7000}}
    trigger = Trigger(type="manual", key="manual:big", source="test", event=event)
    first = ops._deps.starter.start(RunRequest(job=ops._catalog.get("csv-word-count"), trigger=trigger)).run_id
    put_row(ops._table, first, status="FAILED", status_rank=30)

    new = ops.retry_run(first)["run_id"]

    old_uri, uri = (ops._table.get_run_data(r)["event_s3_uri"] for r in (first, new))
    assert uri.startswith(f"s3://run-data/trigger-events/{new}/")
    assert uri != old_uri
    body = env["session"].client("s3").get_object(Bucket="run-data", Key=uri.removeprefix("s3://run-data/"))["Body"]
    assert json.loads(body.read()) == event
    assert ops.get_run(new)["trigger"]["event_s3_uri"] == uri


def test_a_run_written_before_the_split_is_shown_and_retried_from_its_row(ops: Operations, env: dict[str, Any]) -> None:
    """Rows of runs started before RUNDATA# existed hold their event and arguments themselves."""
    first = ops.start_run("nightly-report", {"day": "2026-11-20"}, "token-1")["run_id"]
    data = ops._table.get_run_data(first)
    ops._table._client.delete_item(TableName="runs", Key={"pk": {"S": f"RUNDATA#{first}"}})
    legacy = {"event": data["event"], "type": "manual", "key": "manual:token-1", "source": "manual"}
    put_row(ops._table, first, trigger=legacy, arguments=data["arguments"], status="FAILED")

    shown = ops.get_run(first)
    assert (shown["arguments"], shown["trigger"]["event"]) == ({"day": "2026-11-20"}, json.loads(data["event"]))
    new = ops.retry_run(first)["run_id"]
    new_data = ops._table.get_run_data(new)
    assert (new_data["arguments"], new_data["event"], new_data["retry_of"]) == (data["arguments"], data["event"], first)


def test_a_live_run_or_an_unknown_one_cannot_be_retried(ops: Operations) -> None:
    live = ops.start_run("csv-word-count", {}, "token-1")["run_id"]
    with pytest.raises(Conflict, match=f"run {live} is PENDING: retry a finished run"):
        ops.retry_run(live)
    with pytest.raises(RunNotFound):
        ops.retry_run("csv-word-count-ffffffffffffffffffff")
