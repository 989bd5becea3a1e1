"""`list_runs` over 250 runs: newest first, every page joined gives each run once, every filter
answers from its keys-only index (Query of keys, then BatchGetItem of the page's rows; never Scan),
and bad input says what is wrong."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from jobline import operations
from jobline.errors import UnknownJobError
from jobline.operations import Operations, get_operations
from jobline.operator_errors import InvalidRequest
from jobline.status import RunStatus

pytestmark = pytest.mark.usefixtures("env")
JOBS = ("csv-word-count", "nightly-report")
STATUSES = [status.value for status in RunStatus]
COUNT = 250


@pytest.fixture
def rows() -> list[dict[str, Any]]:
    """Newest first, as every listing must return them; run i was created i minutes and 30 s ago
    (distinct times, never on a minute boundary)."""
    now = datetime.now(UTC)
    return [
        {
            "run_id": f"{JOBS[i % 2]}-{i:020x}",
            "record_type": "RUN",
            "job": JOBS[i % 2],
            "status": STATUSES[i % len(STATUSES)],
            "reason": "test",
            "attempt": 1,
            "max_attempts": 1,
            "trigger": {"type": "sqs", "source": "test"},
            "created_at": (now - timedelta(minutes=i, seconds=30)).isoformat(timespec="milliseconds")[:23] + "Z",
        }
        for i in range(COUNT)
    ]


@pytest.fixture
def ops() -> Iterator[Operations]:
    operations.get_operations.cache_clear()
    yield get_operations()
    operations.get_operations.cache_clear()


@pytest.fixture
def loaded(ops: Operations, rows: list[dict[str, Any]]) -> Operations:
    for row in reversed(rows):
        assert ops._table.create_run(row) is None
    return ops


@pytest.fixture
def calls(ops: Operations) -> list[str]:
    """Every DynamoDB operation the listing makes."""
    seen: list[str] = []
    client = ops._table._client
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: seen.append(model.name))
    return seen


def all_pages(ops: Operations, **filters: Any) -> list[list[str]]:
    pages, token = [], None
    while True:
        page = ops.list_runs(**filters, next_token=token)
        pages.append([run["run_id"] for run in page["runs"]])
        token = page["next_token"]
        if token is None:
            return pages


def joined(pages: list[list[str]]) -> list[str]:
    return [run_id for page in pages for run_id in page]


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["run_id"] for row in rows]


def test_all_runs_newest_first_in_pages_of_200(
    loaded: Operations, rows: list[dict[str, Any]], calls: list[str]
) -> None:
    pages = all_pages(loaded, max_results=200)
    assert [len(page) for page in pages] == [200, 50]
    assert joined(pages) == ids(rows)
    # A page: one Query of its keys, one BatchGetItem per 100 of them.
    assert calls == ["Query", "BatchGetItem", "BatchGetItem", "Query", "BatchGetItem"]


def test_small_pages_join_to_every_run_once_in_order(loaded: Operations, rows: list[dict[str, Any]]) -> None:
    pages = all_pages(loaded, max_results=7)
    assert len(pages) == 36
    assert all(len(page) == 7 for page in pages[:-1])
    assert joined(pages) == ids(rows)


def test_the_default_page_is_100_runs(loaded: Operations, rows: list[dict[str, Any]]) -> None:
    page = loaded.list_runs()
    assert [run["run_id"] for run in page["runs"]] == ids(rows[:100])
    assert page["next_token"]
    summary = page["runs"][0]
    assert summary["job"] == rows[0]["job"]
    assert (summary["status"], summary["created_at"], summary["trigger_type"]) == (
        "PENDING",
        rows[0]["created_at"],
        "sqs",
    )


@pytest.mark.parametrize(
    ("filters", "keep"),
    [
        ({"job": "nightly-report"}, lambda i, row: row["job"] == "nightly-report"),
        ({"status": "failed"}, lambda i, row: row["status"] == "FAILED"),
        ({"job": JOBS[0], "status": "RUNNING"}, lambda i, row: (row["job"], row["status"]) == (JOBS[0], "RUNNING")),
        ({"since": "60m"}, lambda i, row: i < 60),
        ({"since": 120}, lambda i, row: i <= 120),  # the creation time of run 120, as ISO 8601
        (
            {"job": "nightly-report", "status": "SUCCEEDED", "since": "3h"},
            lambda i, row: (row["job"], row["status"]) == ("nightly-report", "SUCCEEDED") and i < 180,
        ),
    ],
)
def test_filters_page_through_exactly_the_matching_runs(
    loaded: Operations, rows: list[dict[str, Any]], calls: list[str], filters: dict[str, Any], keep: Any
) -> None:
    if isinstance(filters.get("since"), int):
        filters = {**filters, "since": rows[filters["since"]]["created_at"]}
    expected = ids([row for i, row in enumerate(rows) if keep(i, row)])
    assert expected, "each filter matches some runs"
    pages = all_pages(loaded, max_results=4, **filters)
    assert joined(pages) == expected
    assert all(len(page) == 4 for page in pages[:-1])
    assert set(calls) == {"Query", "BatchGetItem"}


def test_a_sparse_filter_keeps_reading_until_the_page_is_full(loaded: Operations, rows: list[dict[str, Any]]) -> None:
    """DynamoDB ends a page after Limit items read (or 1 MB) before filtering: force tiny reads."""

    def read_three(params: dict[str, Any], **_: Any) -> None:
        params["Limit"] = 3

    loaded._table._client.meta.events.register("provide-client-params.dynamodb.Query", read_three)
    expected = ids([row for row in rows if (row["job"], row["status"]) == ("nightly-report", "TIMEOUT")])
    pages = all_pages(loaded, job="nightly-report", status="TIMEOUT", max_results=5)
    assert [len(page) for page in pages] == [5] * (len(expected) // 5) + (
        [len(expected) % 5] if len(expected) % 5 else []
    )
    assert joined(pages) == expected


def test_the_filters_are_served_by_their_index(ops: Operations, calls: list[str]) -> None:
    indexes: list[str] = []
    ops._table._client.meta.events.register(
        "provide-client-params.dynamodb.Query", lambda params, **_: indexes.append(params["IndexName"])
    )
    ops.list_runs()
    ops.list_runs(job="nightly-report")
    ops.list_runs(status="FAILED")
    ops.list_runs(job="nightly-report", status="FAILED")
    assert indexes == ["by-created-keys", "by-job-keys", "by-status-keys", "by-job-keys"]


def test_the_indexes_hold_keys_only(loaded: Operations) -> None:
    """So a row write pays an index only when that index's key changes (the template's KEYS_ONLY
    projections, as the local table is built from template.yaml)."""
    client = loaded._table._client
    for index, attribute, value in [
        ("by-job-keys", "job", "nightly-report"),
        ("by-status-keys", "status", "FAILED"),
        ("by-created-keys", "record_type", "RUN"),
    ]:
        items = client.query(
            TableName="runs",
            IndexName=index,
            KeyConditionExpression="#k = :v",
            ExpressionAttributeNames={"#k": attribute},
            ExpressionAttributeValues={":v": {"S": value}},
        )["Items"]
        assert items
        assert all(set(item) == {"pk", attribute, "created_at"} for item in items)


def test_keys_batchgetitem_leaves_unprocessed_are_asked_again(
    loaded: Operations, rows: list[dict[str, Any]], calls: list[str]
) -> None:
    """DynamoDB may answer a BatchGetItem with UnprocessedKeys (throttling, 16 MB): those are
    read again, and the page is whole and in order."""
    client = loaded._table._client

    def nothing_processed(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        client.meta.events.unregister("before-call.dynamodb.BatchGetItem", nothing_processed)
        requested = json.loads(params["body"])["RequestItems"]
        return AWSResponse("https://dynamodb", 200, {}, None), {"Responses": {"runs": []}, "UnprocessedKeys": requested}

    client.meta.events.register("before-call.dynamodb.BatchGetItem", nothing_processed)
    page = loaded.list_runs(max_results=10)
    assert [run["run_id"] for run in page["runs"]] == ids(rows[:10])
    assert calls == ["Query", "BatchGetItem", "BatchGetItem"]


def test_a_token_stays_valid_while_new_runs_arrive(loaded: Operations, rows: list[dict[str, Any]]) -> None:
    first = loaded.list_runs(max_results=10)
    loaded.start_run("csv-word-count", {})
    second = loaded.list_runs(max_results=10, next_token=first["next_token"])
    assert [run["run_id"] for run in second["runs"]] == ids(rows[10:20])


def _token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"status": "DONE"}, "unknown status 'DONE': use one of PENDING, STARTING, RUNNING, SUCCEEDED, FAILED"),
        ({"max_results": 0}, "max_results must be from 1 to 200, got 0"),
        ({"max_results": 201}, "max_results must be from 1 to 200, got 201"),
        ({"max_results": "ten"}, "max_results 'ten' is not a number from 1 to 200"),
        ({"since": "yesterday"}, "since 'yesterday' is neither a time"),
        ({"next_token": "not*base64!"}, "malformed next_token"),
        ({"next_token": _token(["a", "list"])}, "malformed next_token"),
        ({"next_token": _token({"pk": "RUN#x"})}, "malformed next_token"),
        ({"next_token": base64.b64encode(b"\xff\xfe").decode()}, "malformed next_token"),
        (
            {"status": "FAILED", "next_token": _token({"pk": "RUN#x", "job": "nightly-report", "created_at": "x"})},
            "belongs to a listing with other filters",
        ),
    ],
)
def test_bad_listing_requests_are_refused_with_the_reason(
    ops: Operations, filters: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        ops.list_runs(**filters)


def test_listing_an_unknown_job_is_refused(ops: Operations) -> None:
    with pytest.raises(UnknownJobError, match="unknown job 'nope'"):
        ops.list_runs(job="nope")
