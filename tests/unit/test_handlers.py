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
from tests.unit.conftest import LambdaContext, dlq_messages, executions, load_handler, queued, sample

pytestmark = pytest.mark.usefixtures("env")


def rows(env: dict[str, Any], prefix: str = "RUN#") -> list[dict[str, Any]]:
    """The table's run rows (RUN#), or its items of another prefix: "RUN" also holds runs' data."""
    items = env["session"].client("dynamodb").scan(TableName="runs")["Items"]
    return [item for item in items if item["pk"]["S"].startswith(prefix)]


def test_s3_object_created_starts_one_run_and_a_duplicate_none(env: dict[str, Any]) -> None:
    handler = load_handler("s3_trigger").handler
    first = handler(queued(sample("s3-object-created.json")), LambdaContext())
    again = handler(queued(sample("s3-object-created.json")), LambdaContext())

    (run,) = first["runs"]
    assert run["job"] == "csv-word-count"
    assert (run["created"], again["runs"][0]["created"]) == (True, False)
    assert again["runs"][0]["run_id"] == run["run_id"]
    assert executions(env) == [run["run_id"]]
    row = get_deps().table.get_run(run["run_id"])
    assert (row["status"], row["reason"]) == ("PENDING", "Recently submitted")
    assert row["trigger"]["source"] == "s3://jobline-input-bucket/incoming/orders.csv"


@pytest.mark.parametrize(
    ("sample_name", "change", "code", "reason"),
    [
        ("s3-object-created.json", {"job": "no-such-job"}, "UnknownJob", "unknown job 'no-such-job'"),
        ("s3-object-created.json", {"trigger": 1}, "NoMatchingJob", "declares no triggers.s3[1]"),
        ("bus-report-requested.json", {"trigger": 3}, "NoMatchingJob", "declares no triggers.bus[3]"),
        ("bus-report-requested.json", {"job": "csv-word-count"}, "NoMatchingJob", "declares no triggers.bus[0]"),
    ],
)
def test_a_rule_deployed_from_another_catalog_is_rejected_to_the_dlq(
    env: dict[str, Any], sample_name: str, change: dict[str, Any], code: str, reason: str
) -> None:
    """EventBridge matched the event (a generated rule per trigger), so the function only meets a
    job or trigger it does not know when the template and the code's catalog disagree."""
    event = sample(sample_name) | change
    function = "s3_trigger" if sample_name.startswith("s3") else "bus_trigger"
    result = load_handler(function).handler(queued(event), LambdaContext())

    assert result["runs"] == []
    (parked,) = dlq_messages(env)
    assert parked["code"] == code
    assert reason in parked["reason"]
    assert parked["event"] == event
    assert rows(env, "RUN") == []


@pytest.mark.parametrize(
    ("sample_name", "break_it", "where"),
    [
        ("s3-object-created.json", lambda e: e["event"]["detail"]["object"].pop("key"), "detail.object.key"),
        ("s3-object-created.json", lambda e: e.pop("trigger"), "trigger"),
        ("bus-report-requested.json", lambda e: e["event"].pop("detail-type"), "detail-type"),
        ("bus-report-requested.json", lambda e: e.update(extra=1), "extra"),
    ],
)
def test_a_malformed_delivery_is_rejected_with_what_is_wrong(
    env: dict[str, Any], sample_name: str, break_it: Any, where: str
) -> None:
    event = sample(sample_name)
    break_it(event)
    function = "s3_trigger" if sample_name.startswith("s3") else "bus_trigger"
    load_handler(function).handler(queued(event), LambdaContext())

    (parked,) = dlq_messages(env)
    assert parked["code"] == "MalformedEvent"
    assert where in parked["reason"]
    assert rows(env, "RUN") == []


def test_a_bus_event_starts_a_run_with_its_arguments_and_its_key(env: dict[str, Any]) -> None:
    handler = load_handler("bus_trigger").handler
    event = sample("bus-report-requested.json")
    first = handler(queued(event), LambdaContext())
    event["event"]["id"] = "another-delivery-id"  # a re-sent event with the same request_id
    again = handler(queued(event), LambdaContext())

    (run,) = first["runs"]
    assert again["runs"][0]["run_id"] == run["run_id"]
    assert again["runs"][0]["created"] is False
    row, data = get_deps().table.get_run_and_data(run["run_id"])
    assert data["arguments"] == {"day": "2026-11-20"}
    assert json.loads(data["event"])["id"] == sample("bus-report-requested.json")["event"]["id"]  # the first's
    assert row["trigger"]["source"] == "bus: acme.reports / Report Requested"


def test_a_bus_event_without_its_idempotency_key_is_rejected(env: dict[str, Any]) -> None:
    event = sample("bus-report-requested.json")
    del event["event"]["detail"]["request_id"]
    load_handler("bus_trigger").handler(queued(event), LambdaContext())
    (parked,) = dlq_messages(env)
    assert parked["code"] == "MalformedEvent"
    assert "has no detail.request_id" in parked["reason"]


def test_a_bus_event_with_an_oversized_argument_is_rejected(env: dict[str, Any]) -> None:
    event = sample("bus-report-requested.json")
    event["event"]["detail"]["day"] = "x" * 2000
    result = load_handler("bus_trigger").handler(queued(event), LambdaContext())
    assert result["runs"] == []
    (parked,) = dlq_messages(env)
    assert parked["code"] == "InvalidArguments"
    assert "2000 characters, over its max_length 1024" in parked["reason"]
    assert rows(env, "RUN") == []


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
    (data,) = rows(env, "RUNDATA#")
    assert data["arguments"]["M"]["output_prefix"]["S"] == "results/manual/"


def test_state_change_moves_a_jobline_run_and_ignores_other_jobs(env: dict[str, Any]) -> None:
    started = load_handler("s3_trigger").handler(queued(sample("s3-object-created.json")), LambdaContext())["runs"][0]
    handler = load_handler("state_change").handler
    event = sample("batch-job-running.json")
    event["detail"]["tags"].update({"jobline:run-id": started["run_id"], "jobline:attempt": "1"})
    assert handler(event, LambdaContext())["outcome"] == "applied: PENDING -> RUNNING"
    assert handler(event, LambdaContext())["outcome"].startswith("unchanged")

    row = get_deps().table.get_run(started["run_id"])
    assert row["attempts"]["1"]["log_stream"] == "jobline-default/default/4c7599ae"
    assert row["attempts"]["1"]["started_at"] == "2026-11-21T04:56:50.000Z"  # detail.startedAt, 1795237010000 ms

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
    assert handler({}, LambdaContext())["cut_short"] is None
    # An invocation with 5 s left (under the sweep's 10 s margin) lists nothing, heals nothing and says so.
    short = handler({}, EndingContext(5_000))
    assert (short["checked"], short["cut_short"]) == (0, "cut short for time at a page of running executions")


def run_id(env: dict[str, Any]) -> str:
    (row,) = rows(env)
    return row["pk"]["S"].removeprefix("RUN#")


class EndingContext(LambdaContext):
    """An invocation whose time runs out: the remaining milliseconds each record is started with."""

    def __init__(self, *millis_left: int) -> None:
        self.millis_left = list(millis_left)

    def get_remaining_time_in_millis(self) -> int:
        return self.millis_left.pop(0) if len(self.millis_left) > 1 else self.millis_left[0]


def deliveries(count: int) -> list[dict[str, Any]]:
    event = sample("s3-object-created.json")
    made = []
    for n in range(count):
        delivery = json.loads(json.dumps(event))
        delivery["event"]["detail"]["object"]["key"] = f"incoming/part-{n}.csv"
        made.append(delivery)
    return made


def test_a_trigger_batch_hands_back_what_the_invocation_has_no_time_left_for(env: dict[str, Any]) -> None:
    """The third record is met with 4 s left (under the 5 s margin): handed back unstarted, in the
    partial batch response, not into a timeout that would send back the two runs made too."""
    result = load_handler("s3_trigger").handler(queued(*deliveries(3)), EndingContext(30_000, 20_000, 4_000))
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == ["intake-2"]
    assert len(result["runs"]) == 2
    assert sorted(r["run_id"] for r in result["runs"]) == sorted(executions(env))
    # SQS delivers it again: it makes its run then.
    again = load_handler("s3_trigger").handler(queued(*deliveries(3)[2:]), LambdaContext())
    assert again["batchItemFailures"] == []
    assert again["runs"][0]["created"]
    assert len(executions(env)) == 3


def test_a_record_slower_than_half_the_time_left_is_the_last_started(env: dict[str, Any]) -> None:
    """Each record takes 8 s here; with 20 s left after the first, a second would need 16 of them at
    its slowest doubled: started (20 > 16); with 12 s left, the third is handed back (12 < 16)."""
    result = load_handler("sqs_trigger").handler(
        {"Records": [sqs_message(n) for n in range(3)]}, EndingContext(28_000, 20_000, 12_000)
    )
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == ["m-2"]
    assert len(rows(env)) == 2


def sqs_message(n: int) -> dict[str, Any]:
    record = json.loads(json.dumps(sample("sqs-batch.json")["Records"][0]))
    record.update(
        messageId=f"m-{n}", body=json.dumps({"job": "csv-word-count", "arguments": {"output_prefix": f"results/{n}/"}})
    )
    return record
