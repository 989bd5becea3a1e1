"""Every handler on real-shaped events, and every bad-input path: clear reason, logged, counted,
parked in the DLQ (or redriven there by SQS), never a partial run row."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobline import deps as deps_module
from jobline import settings as settings_module
from jobline.deps import get_deps
from jobline.settings import Settings
from tests.cfn import resource
from tests.unit.conftest import LambdaContext, dlq_messages, executions, load_handler, sample

pytestmark = pytest.mark.usefixtures("env")


def rows(env: dict[str, Any]) -> list[dict[str, Any]]:
    items = env["session"].client("dynamodb").scan(TableName="runs")["Items"]
    return [item for item in items if item["pk"]["S"].startswith("RUN#")]


def test_s3_object_created_starts_one_run_and_a_duplicate_none(env: dict[str, Any]) -> None:
    handler = load_handler("s3_trigger").handler
    first = handler(sample("s3-object-created.json"), LambdaContext())
    again = handler(sample("s3-object-created.json"), LambdaContext())

    (run,) = first["runs"]
    assert run["job"] == "csv-word-count"
    assert (run["created"], again["runs"][0]["created"]) == (True, False)
    assert again["runs"][0]["run_id"] == run["run_id"]
    assert executions(env) == [run["run_id"]]
    row = get_deps().table.get_run(run["run_id"])
    assert (row["status"], row["reason"]) == ("PENDING", "Recently submitted")
    assert row["trigger"]["source"] == "s3://jobline-input-bucket/incoming/orders.csv"


def test_an_s3_object_no_job_wants_is_rejected_to_the_dlq(env: dict[str, Any]) -> None:
    event = sample("s3-object-created.json")
    event["detail"]["object"]["key"] = "elsewhere/photo.png"
    result = load_handler("s3_trigger").handler(event, LambdaContext())

    assert result["runs"] == []
    (parked,) = dlq_messages(env)
    assert parked["code"] == "NoMatchingJob"
    assert "elsewhere/photo.png" in parked["reason"]
    assert parked["event"] == event
    assert rows(env) == []


def test_a_malformed_s3_event_is_rejected_with_what_is_wrong(env: dict[str, Any]) -> None:
    event = sample("s3-object-created.json")
    del event["detail"]["object"]["key"]
    load_handler("s3_trigger").handler(event, LambdaContext())

    (parked,) = dlq_messages(env)
    assert parked["code"] == "MalformedEvent"
    assert "detail.object.key" in parked["reason"]
    assert rows(env) == []


def test_a_bus_event_starts_a_run_with_its_arguments_and_its_key(env: dict[str, Any]) -> None:
    handler = load_handler("bus_trigger").handler
    event = sample("bus-report-requested.json")
    first = handler(event, LambdaContext())
    event["id"] = "another-delivery-id"  # a re-sent event with the same request_id
    again = handler(event, LambdaContext())

    (run,) = first["runs"]
    assert again["runs"][0]["run_id"] == run["run_id"]
    assert again["runs"][0]["created"] is False
    row = get_deps().table.get_run(run["run_id"])
    assert row["arguments"] == {"day": "2026-11-20"}


def test_a_bus_event_that_matches_no_job_is_rejected(env: dict[str, Any]) -> None:
    event = sample("bus-report-requested.json") | {"source": "acme.unknown"}
    load_handler("bus_trigger").handler(event, LambdaContext())
    (parked,) = dlq_messages(env)
    assert parked["code"] == "NoMatchingJob"
    assert "acme.unknown" in parked["reason"]


def test_a_bus_event_with_an_oversized_argument_is_rejected(env: dict[str, Any]) -> None:
    event = sample("bus-report-requested.json")
    event["detail"]["day"] = "x" * 2000
    result = load_handler("bus_trigger").handler(event, LambdaContext())
    assert result["runs"] == []
    (parked,) = dlq_messages(env)
    assert parked["code"] == "InvalidArguments"
    assert "2000 characters, over its max_length 1024" in parked["reason"]
    assert rows(env) == []


def test_a_schedule_starts_one_run_per_scheduled_time(env: dict[str, Any]) -> None:
    handler = load_handler("schedule_trigger").handler
    event = sample("schedule-input.json")
    first = handler(event, LambdaContext())["runs"][0]
    same = handler(event, LambdaContext())["runs"][0]
    later = handler(event | {"scheduled_time": "2026-11-22T02:00:00Z"}, LambdaContext())["runs"][0]
    assert first["run_id"] == same["run_id"] != later["run_id"]
    assert len(executions(env)) == 2


def test_a_schedule_for_an_unknown_job_is_rejected(env: dict[str, Any]) -> None:
    load_handler("schedule_trigger").handler(sample("schedule-input.json") | {"job": "gone"}, LambdaContext())
    (parked,) = dlq_messages(env)
    assert parked["code"] == "UnknownJob"
    assert "unknown job 'gone'" in parked["reason"]


def test_sqs_reports_only_the_poison_message_as_failed(env: dict[str, Any]) -> None:
    batch = sample("sqs-batch.json")
    unknown = json.loads(json.dumps(batch["Records"][0]))
    unknown.update(messageId="3c1b0d7e-0000-4000-8000-000000000003", body=json.dumps({"job": "nope"}))
    undeclared = json.loads(json.dumps(batch["Records"][0]))
    undeclared.update(
        messageId="3c1b0d7e-0000-4000-8000-000000000004",
        body=json.dumps({"job": "csv-word-count", "arguments": {"colour": "red"}}),
    )
    batch["Records"] += [unknown, undeclared]
    result = load_handler("sqs_trigger").handler(batch, LambdaContext())

    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    assert failed == {
        "2e1424d4-f796-459a-8184-9c92662be6da",
        "3c1b0d7e-0000-4000-8000-000000000003",
        "3c1b0d7e-0000-4000-8000-000000000004",
    }
    (row,) = rows(env)
    assert row["arguments"]["M"]["output_prefix"]["S"] == "results/manual/"


def test_state_change_moves_a_jobline_run_and_ignores_other_jobs(env: dict[str, Any]) -> None:
    started = load_handler("s3_trigger").handler(sample("s3-object-created.json"), LambdaContext())["runs"][0]
    handler = load_handler("state_change").handler
    event = sample("batch-job-running.json")
    event["detail"]["tags"].update({"jobline:run-id": started["run_id"], "jobline:attempt": "1"})
    assert handler(event, LambdaContext())["outcome"] == "applied: PENDING -> RUNNING"
    assert handler(event, LambdaContext())["outcome"].startswith("unchanged")

    row = get_deps().table.get_run(started["run_id"])
    assert row["attempts"]["1"]["log_stream"] == "jobline-default/default/4c7599ae"
    assert row["started_at"] == "2026-11-21T04:56:50.000Z"  # detail.startedAt, 1795237010000 ms

    foreign = sample("batch-job-running.json")
    foreign["detail"]["tags"] = {}
    foreign["detail"]["jobName"] = "someone-elses-job"
    assert handler(foreign, LambdaContext())["outcome"] == "ignored: not a jobline job"


def test_a_malformed_state_change_is_parked_not_retried_forever(env: dict[str, Any]) -> None:
    event = sample("batch-job-running.json")
    event["detail"]["status"] = "EXPLODED"
    result = load_handler("state_change").handler(event, LambdaContext())
    assert result["rejected"]["code"] == "MalformedEvent"
    assert dlq_messages(env)[0]["source"] == "state-change"


def test_the_reconciler_takes_its_staleness_from_settings(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    variables = resource("ReconcilerFunction")["Properties"]["Environment"]["Variables"]
    assert {name.lower() for name in variables} <= set(Settings.model_fields)
    load_handler("sqs_trigger").handler(sample("sqs-batch.json"), LambdaContext())  # one run, PENDING
    handler = load_handler("reconciler").handler
    monkeypatch.setenv("RECONCILE_AFTER_SECONDS", variables["RECONCILE_AFTER_SECONDS"])  # 15 minutes
    settings_module.get_settings.cache_clear()
    deps_module.get_deps.cache_clear()
    assert handler({}, LambdaContext())["checked"] == 0  # the new run has moved within 15 minutes
    monkeypatch.setenv("RECONCILE_AFTER_SECONDS", "0")
    settings_module.get_settings.cache_clear()
    deps_module.get_deps.cache_clear()
    assert handler({}, LambdaContext())["checked"] == 1  # every live run is stale at once
