"""Every trigger handler against hostile input (non-objects, missing fields, wrong types, lone
surrogates, huge fields): never an exception out of the handler; each input either starts its
runs or is rejected with its log line, metric and DLQ record (SQS: fails alone, for SQS's DLQ)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobline.deps import get_deps
from tests.unit.conftest import LambdaContext, load_handler, queued, sample

pytestmark = pytest.mark.usefixtures("env")
HUGE = "x" * 300_000
SURROGATES = ["\udc00", "a\ud800b", ["\udfff"], {"\ud800": 1}]  # lone: JSON escapes can carry them
HOSTILE_VALUES = st.one_of(
    st.sampled_from([None, 0, -1, 10**30, 1.5, True, [], {}, "", HUGE, *SURROGATES]),
    st.text(max_size=50),
    st.lists(st.integers(), max_size=3),
)
NOT_OBJECTS = st.one_of(st.none(), st.integers(), st.text(max_size=20), st.lists(st.text(max_size=5), max_size=3))
TRIGGERS = {
    "s3_trigger": "s3-object-created.json",
    "bus_trigger": "bus-report-requested.json",
    "schedule_trigger": "schedule-input.json",
}
EXAMPLES = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a JSON value (dict keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, event: dict[str, Any]) -> Any:
    """The event with one field deleted or replaced by a hostile value, or no object at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(NOT_OBJECTS)
    event = copy.deepcopy(event)
    path = draw(st.sampled_from(paths(event)))
    parent = event
    for step in path[:-1]:
        parent = parent[step]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(HOSTILE_VALUES)
    return event


def dlq_depth(env: dict[str, Any]) -> int:
    attributes = (
        env["session"]
        .client("sqs")
        .get_queue_attributes(QueueUrl=env["dlq"], AttributeNames=["ApproximateNumberOfMessages"])
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


@pytest.mark.parametrize("name", sorted(TRIGGERS))
def test_a_trigger_handler_starts_runs_or_rejects_visibly(env: dict[str, Any], name: str) -> None:
    handler = load_handler(name).handler

    @EXAMPLES
    @given(event=mutated(sample(TRIGGERS[name])))
    def check(event: Any) -> None:
        before = dlq_depth(env)
        delivered = event if name == "schedule_trigger" else queued(event)  # S3 and bus: via an intake queue
        result = handler(delivered, LambdaContext())
        assert result["runs"] or result["rejected"]
        assert dlq_depth(env) == before + len(result["rejected"])
        for run in result["runs"]:
            assert get_deps().table.get_run(run["run_id"]) is not None

    check()


def sqs_record(body: Any, message_id: str) -> dict[str, Any]:
    record = copy.deepcopy(sample("sqs-batch.json")["Records"][0])
    record.update(messageId=message_id, body=body if isinstance(body, str) else json.dumps(body))
    return record


@st.composite
def sqs_bodies(draw: st.DrawFn) -> Any:
    good = {"job": "csv-word-count", "arguments": {"output_prefix": "results/"}, "idempotency_key": "k"}
    if draw(st.integers(0, 5)) == 0:
        return draw(st.text(max_size=30))  # not JSON, or JSON of the wrong kind
    return draw(mutated(good))


@EXAMPLES
@given(bodies=st.lists(sqs_bodies(), min_size=1, max_size=4))
def test_the_sqs_handler_fails_bad_messages_alone_even_a_whole_batch_of_them(
    env: dict[str, Any], bodies: list[Any]
) -> None:
    records = [sqs_record(body, f"m-{i}") for i, body in enumerate(bodies)]
    result = load_handler("sqs_trigger").handler({"Records": records}, LambdaContext())
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    assert failed <= {r["messageId"] for r in records}


def test_an_sqs_batch_of_only_bad_messages_is_a_partial_batch_response(env: dict[str, Any]) -> None:
    records = [sqs_record({"job": "nope"}, "m-1"), sqs_record("not json", "m-2")]
    result = load_handler("sqs_trigger").handler({"Records": records}, LambdaContext())
    assert {f["itemIdentifier"] for f in result["batchItemFailures"]} == {"m-1", "m-2"}


@pytest.mark.parametrize("event", [None, [], "x", {"Records": "x"}, {"Records": [{"body": "{}"}]}])
def test_an_invocation_that_is_no_sqs_batch_is_parked_in_the_event_dlq(env: dict[str, Any], event: Any) -> None:
    result = load_handler("sqs_trigger").handler(event, LambdaContext())
    assert result["batchItemFailures"] == []
    assert result["rejected"]["code"] == "MalformedEvent"
    assert dlq_depth(env) == 1


def test_a_rejected_event_too_large_for_sqs_keeps_its_head_size_and_hash(env: dict[str, Any]) -> None:
    event = sample("bus-report-requested.json") | {"trigger": 7}  # a rule of another catalog
    event["event"]["detail"]["blob"] = HUGE
    load_handler("bus_trigger").handler(queued(event), LambdaContext())
    message = env["session"].client("sqs").receive_message(QueueUrl=env["dlq"])["Messages"][0]
    parked = json.loads(message["Body"])
    assert parked["code"] == "NoMatchingJob"
    assert parked["event"] is None
    assert parked["event_truncated"]["bytes"] == len(json.dumps(event))
    assert parked["event_truncated"]["head"].startswith('{"job": "nightly-report"')
