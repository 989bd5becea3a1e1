"""Every input the state change handler can be sent, as Lambda invokes it on moto: refused with a
log line, a metric and a DLQ record, or sanitised; never an exception, never a row past 400 KB."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobline.backends.base import EVENT_TEXT_LIMIT_BYTES, TRUNCATED
from jobline.dal import _to_item
from jobline.deps import get_deps
from tests.unit.conftest import LambdaContext, dlq_messages, load_handler, sample
from tests.unit.event_lab import new_row, ticket
from tests.unit.test_status_ties import RUN_ID, batch, processing, service, training

ITEM_LIMIT_BYTES = 400 * 1024  # DynamoDB's item size limit (names and values, UTF-8)
HANDLER = load_handler("state_change").handler
SAMPLES = [batch(1, "FAILED"), service(1, "SUCCEEDED"), training(1, "Completed"), processing(1, "Failed")]
SAMPLES += [sample("glue-job-state-change-failed.json")]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
hostile = st.one_of(
    json_values,
    st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=4),  # lone surrogates
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "\U0001f600", "\ud800"]), st.just(300 * 1024)),
    st.integers(min_value=-(2**70), max_value=2**70),  # epoch ms far out of range
    st.sampled_from(["9999-12-31T23:59:59-23:00", "0001-01-01T00:00:00+01:00", "2026-13-01T00:00:00Z"]),
)


def item_size(item: dict[str, Any]) -> int:
    """Bytes DynamoDB counts for an item: attribute names and values, UTF-8 (an upper bound)."""
    return len(json.dumps(item, ensure_ascii=False).encode())


@pytest.fixture
def run(env: dict[str, Any]) -> dict[str, Any]:
    get_deps().table.create_run(new_row(run_id=RUN_ID))
    for attempt in (1, 2, 3):
        env["session"].client("dynamodb").put_item(TableName="runs", Item=_to_item(ticket(RUN_ID, attempt, 3)))
    return env


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a JSON value."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += paths(inner, (*prefix, index))
    return found


@st.composite
def hostile_events(draw: st.DrawFn) -> Any:
    """An event AWS or a producer could send: a real one with hostile values in some places, or any JSON."""
    if draw(st.integers(0, 4)) == 0:
        return draw(json_values)
    event = copy.deepcopy(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(event) or [("detail",)]))
        target = event
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = draw(hostile)
    return event


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=hostile_events())
def test_no_input_raises_and_the_row_stays_under_the_item_limit(run: dict[str, Any], event: Any) -> None:
    result = HANDLER(event, LambdaContext())
    assert set(result) in ({"outcome"}, {"rejected"})
    ddb = run["session"].client("dynamodb")
    item = ddb.get_item(TableName="runs", Key={"pk": {"S": f"RUN#{RUN_ID}"}})["Item"]
    assert item_size(item) < ITEM_LIMIT_BYTES


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (["a", "list"], "a state change event is a JSON object, not list"),
        (None, "not NoneType"),
        ({"detail-type": ["Batch Job State Change"]}, "is not a job state change jobline consumes"),
        ({**batch(1, "RUNNING"), "detail": "text"}, "detail: Input should be a valid dictionary"),
        ({**batch(1, "RUNNING"), "time": "0001-01-01T00:00:00+01:00"}, "time: Value error, time 0001-01-01"),
        (batch(1, "RUNNING") | {"detail": {**batch(1, "RUNNING")["detail"], "startedAt": 10**20}}, "startedAt"),
        (service(11, "RUNNING"), "attempts are 1 to 10, not 11"),
        (
            batch(1, "FAILED") | {"detail": {**batch(1, "FAILED")["detail"], "container": {"exitCode": 10**40}}},
            "container.exitCode",  # DynamoDB numbers have at most 38 digits
        ),
    ],
)
def test_what_is_not_a_state_change_is_rejected_logged_counted_and_parked(
    run: dict[str, Any],
    event: Any,
    reason: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    result = HANDLER(event, LambdaContext())
    assert result["rejected"]["code"] == "MalformedEvent"
    assert reason in result["rejected"]["reason"]
    (parked,) = dlq_messages(run)
    assert (parked["source"], parked["code"], parked["event"]) == ("state-change", "MalformedEvent", event)
    assert "trigger rejected" in caplog.messages
    assert '"RejectedTriggers":[1.0]' in capsys.readouterr().out


def test_huge_and_unencodable_strings_are_kept_bounded_and_marked(run: dict[str, Any]) -> None:
    event = batch(1, "FAILED")
    event["detail"]["statusReason"] = "\ud800" + "é" * (300 * 1024)
    event["detail"]["container"]["logStreamName"] = "jobline-default/\udfff"
    assert HANDLER(event, LambdaContext())["outcome"] == "applied: PENDING -> RUNNING"  # attempt 1 of 3 failed
    record = (get_deps().table.get_run(RUN_ID) or {})["attempts"]["1"]
    assert record["status_reason"].startswith("?é")
    assert record["status_reason"].endswith(TRUNCATED)
    assert len(record["status_reason"].encode()) <= EVENT_TEXT_LIMIT_BYTES
    assert record["log_stream"] == "jobline-default/?"


def test_a_name_too_long_to_be_jobline_s_is_not_a_jobline_job(run: dict[str, Any]) -> None:
    event = processing(1, "Completed")
    event["detail"]["ProcessingJobName"] = "a" * (300 * 1024) + "-0123456789abcdef0123-1"
    assert HANDLER(event, LambdaContext())["outcome"] == "ignored: not a jobline job"


def test_an_event_too_large_for_the_dlq_is_parked_with_its_head_size_and_hash(run: dict[str, Any]) -> None:
    event = {**batch(1, "RUNNING"), "detail-type": "é" * (300 * 1024)}
    assert HANDLER(event, LambdaContext())["rejected"]["code"] == "MalformedEvent"
    (parked,) = dlq_messages(run)
    assert parked["event"] is None
    assert parked["event_truncated"]["head"].startswith('{"version": "0"')
    assert parked["event_truncated"]["bytes"] > 300 * 1024
