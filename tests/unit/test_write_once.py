"""Write once, in the right order: whatever the duplicates, one delivery's trigger event is what
the run's data (RUNDATA#), the execution input and the stored S3 object hold, and the row
(RUN#) holds none of it; nothing stays written for a request that is refused."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from jobline.catalog import parse_catalog
from jobline.deps import get_deps
from jobline.errors import RejectedInput
from jobline.triggers import RunRequest, Trigger, run_id
from tests.aws_resources import job_spec
from tests.unit.conftest import LambdaContext, dlq_messages, executions, load_handler, queued, run_executions, sample

pytestmark = pytest.mark.usefixtures("env")
DUPLICATES = 8


def bus_event(delivery: int, size: int) -> dict[str, Any]:
    """A re-sent `Report Requested` (same request_id, so the same run) with its own id and body."""
    delivered = sample("bus-report-requested.json")
    delivered["event"]["id"] = f"delivery-{delivery}"
    delivered["event"]["detail"]["note"] = f"{delivery}:" + "x" * size
    return delivered


def deliver_concurrently(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    handler = load_handler("bus_trigger").handler
    barrier = threading.Barrier(len(events))
    results: list[dict[str, Any]] = [{} for _ in events]

    def deliver(i: int) -> None:
        barrier.wait()
        results[i] = handler(queued(events[i]), LambdaContext())

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(len(events))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def execution_environment(env: dict[str, Any], run_id: str) -> dict[str, str]:
    sfn = env["session"].client("stepfunctions")
    (arn,) = [e["executionArn"] for e in run_executions(env) if e["name"] == run_id]
    request = json.loads(sfn.describe_execution(executionArn=arn)["input"])["request"]
    return {item["name"]: item["value"] for item in request["params"]["containerOverrides"]["environment"]}


def objects(env: dict[str, Any]) -> dict[str, bytes]:
    s3 = env["session"].client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="run-data").get("Contents", [])]
    return {key: s3.get_object(Bucket="run-data", Key=key)["Body"].read() for key in keys}


def delivered_event(events: list[dict[str, Any]], stored: dict[str, Any]) -> dict[str, Any]:
    """Which delivery's event the run holds (the matched event, not the rule's wrapper)."""
    (event,) = [e["event"] for e in events if e["event"] == stored]
    return event


@pytest.mark.parametrize("size", [10, 10_000], ids=["inline", "stored-in-s3"])
def test_concurrent_duplicates_make_one_run_holding_one_deliverys_event(env: dict[str, Any], size: int) -> None:
    events = [bus_event(i, size) for i in range(DUPLICATES)]
    results = deliver_concurrently(events)

    assert sum(result["runs"][0]["created"] for result in results) == 1
    (run_id,) = {result["runs"][0]["run_id"] for result in results}
    assert executions(env) == [run_id]
    row, data = get_deps().table.get_run_and_data(run_id)
    assert {"event", "event_s3_uri", "arguments"}.isdisjoint(row)
    assert set(row["trigger"]) == {"type", "source"}  # its key is in the run's data
    assert data["trigger_key"].startswith("bus:")
    assert data["arguments"] == {"day": "2026-11-20"}
    environment = execution_environment(env, run_id)
    if size < 6144:
        delivered_event(events, json.loads(data["event"]))
        assert environment["JOBLINE_TRIGGER_EVENT"] == data["event"]
        assert objects(env) == {}
    else:
        uri = data["event_s3_uri"]
        assert environment["JOBLINE_TRIGGER_EVENT_S3_URI"] == uri
        (key, body), *others = objects(env).items()
        assert others == []  # every duplicate's own object was removed again
        assert uri == f"s3://run-data/{key}"
        delivered_event(events, json.loads(body))


def test_a_redelivery_of_the_same_large_event_keeps_its_one_object(env: dict[str, Any]) -> None:
    handler = load_handler("bus_trigger").handler
    event = bus_event(1, 10_000)
    first, again = handler(queued(event), LambdaContext()), handler(queued(event), LambdaContext())
    assert (first["runs"][0]["created"], again["runs"][0]["created"]) == (True, False)
    (body,) = objects(env).values()
    assert json.loads(body) == event["event"]


def test_a_large_event_refused_writes_nothing(env: dict[str, Any]) -> None:
    event = bus_event(1, 10_000)
    event["event"]["detail"]["day"] = "x" * 2000  # over the parameter's max_length
    result = load_handler("bus_trigger").handler(queued(event), LambdaContext())
    assert result["runs"] == []
    assert dlq_messages(env)[0]["code"] == "InvalidArguments"
    assert objects(env) == {}
    assert executions(env) == []


def test_a_large_event_the_backend_refuses_writes_nothing(env: dict[str, Any]) -> None:
    """The backend's own checks (here: no GPU queue in this stack) run before anything is written."""
    job = parse_catalog({"jobs": [job_spec("gpu-job", backend={"type": "batch", "capacity": "gpu", "gpu": 1})]})
    trigger = Trigger(type="manual", key="manual:1", source="test", event={"big": "x" * 10_000})
    with pytest.raises(RejectedInput, match="gpu job queue"):
        get_deps().starter.start(RunRequest(job=job.jobs[0], trigger=trigger))
    assert objects(env) == {}
    assert get_deps().table.get_run(run_id("gpu-job", "manual:1")) is None


def test_a_row_write_that_fails_leaves_the_object_for_the_redelivery_to_adopt(env: dict[str, Any]) -> None:
    """DynamoDB throttles the row write: the delivery fails (SQS delivers it again), and the retry
    finds its content-addressed object already stored and writes the row that points to it."""
    deps = get_deps()
    client = deps.table._client
    throttled = AWSResponse("https://dynamodb", 400, {}, None)

    def throttle(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return throttled, {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}

    client.meta.events.register("before-call.dynamodb.PutItem", throttle)
    handler = load_handler("bus_trigger").handler
    event = bus_event(1, 10_000)
    failed = handler(queued(event), LambdaContext())
    assert failed["batchItemFailures"] == [{"itemIdentifier": "intake-0"}]
    client.meta.events.unregister("before-call.dynamodb.PutItem", throttle)
    assert executions(env) == []

    (run,) = handler(queued(event), LambdaContext())["runs"]
    assert run["created"] is True
    (key,) = objects(env)
    assert deps.table.get_run_data(run["run_id"])["event_s3_uri"] == f"s3://run-data/{key}"


def test_a_redelivery_after_the_data_was_written_runs_the_stored_data_not_its_own(env: dict[str, Any]) -> None:
    """The data is written, then the row write fails (the invocation dies between the two): the
    next delivery, carrying another copy of the event, creates the row and starts the execution
    from the stored data; its own large event's object is removed again."""
    deps = get_deps()
    client = deps.table._client
    throttled = AWSResponse("https://dynamodb", 400, {}, None)

    def throttle_rows(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if b'"RUN#' not in params["body"]:
            return None  # the RUNDATA# write goes through
        return throttled, {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}

    client.meta.events.register("before-call.dynamodb.PutItem", throttle_rows)
    handler = load_handler("bus_trigger").handler
    first, second = bus_event(1, 10_000), bus_event(2, 10_000)
    failed = handler(queued(first), LambdaContext())
    assert failed["batchItemFailures"] == [{"itemIdentifier": "intake-0"}]
    client.meta.events.unregister("before-call.dynamodb.PutItem", throttle_rows)
    run_id = run_id_of(first)
    assert deps.table.get_run(run_id) is None
    assert executions(env) == []
    (first_key,) = objects(env)

    (run,) = handler(queued(second), LambdaContext())["runs"]
    assert (run["run_id"], run["created"]) == (run_id, True)
    assert objects(env).keys() == {first_key}  # the second delivery's own object was removed again
    data = deps.table.get_run_data(run_id)
    assert data["event_s3_uri"] == f"s3://run-data/{first_key}"
    assert execution_environment(env, run_id)["JOBLINE_TRIGGER_EVENT_S3_URI"] == data["event_s3_uri"]
    assert json.loads(objects(env)[first_key]) == first["event"]


def run_id_of(delivered: dict[str, Any]) -> str:
    return run_id("nightly-report", f"bus:{delivered['event']['detail']['request_id']}")
