"""The bench's counting: DynamoDB item sizes and capacity units, the index write rules, billed
transitions from a history, the submit rate window and the cost model, against hand-computed
cases; and the meter itself on a moto server, counting real requests."""

from __future__ import annotations

import socket
import threading
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from jobline_local import bench, bench_cost, bench_report, meter
from jobline_local.meter import Index, item_size, read_units, write_cost, write_units


# ------------------------------------------------------------------ item sizes (CapacityUnitCalculations)
@pytest.mark.parametrize(
    ("item", "size"),
    [
        ({"pk": {"S": "RUN#abc"}}, 2 + 7),
        ({"é": {"S": "€"}}, 2 + 3),  # UTF-8 bytes of the name and the value
        ({"n": {"N": "123.45"}}, 1 + 3 + 1),  # 5 significant digits: 3 bytes, + 1
        ({"n": {"N": "-0.0100"}}, 1 + 1 + 1),  # leading and trailing zeros trimmed: "1"
        ({"n": {"N": "1000"}}, 1 + 1 + 1),
        ({"b": {"B": b"\x00\x01\x02"}}, 1 + 3),
        ({"b": {"B": "AAEC"}}, 1 + 3),  # base64 on the wire: its raw bytes count
        ({"t": {"BOOL": True}, "z": {"NULL": True}}, 2 + 2),
        ({"s": {"SS": ["a", "bc"]}}, 1 + 3),
        ({"m": {"M": {}}}, 1 + 3),
        # 3 bytes per Map, 1 per element: "a"="xy" (1 + 2 + 1), "b"=true (1 + 1 + 1)
        ({"m": {"M": {"a": {"S": "xy"}, "b": {"BOOL": True}}}}, 1 + 3 + 4 + 3),
        ({"l": {"L": [{"S": "ab"}, {"NULL": True}]}}, 1 + 3 + 3 + 2),
        (None, 0),
    ],
)
def test_item_size_follows_dynamodb_rules(item: dict[str, Any] | None, size: int) -> None:
    assert item_size(item) == size


def test_capacity_units_round_up_with_a_minimum() -> None:
    assert [write_units(s) for s in (0, 1, 1024, 1025, 2048, 2049)] == [1, 1, 1, 2, 2, 3]
    assert read_units(4096, consistent=True) == 1
    assert read_units(4097, consistent=True) == 2
    assert read_units(4097, consistent=False) == 1
    assert read_units(0, consistent=False) == 0.5


# ------------------------------------------------------------------ index rules (GSI throughput considerations)
TABLE_KEYS = ["pk"]
KEYS_ONLY = Index("by-status", ["status", "created_at"], TABLE_KEYS, {"ProjectionType": "KEYS_ONLY"})
ALL = Index("by-job", ["job", "created_at"], TABLE_KEYS, {"ProjectionType": "ALL"})
INCLUDE = Index(
    "by-waiting",
    ["waiting_for", "created_at"],
    TABLE_KEYS,
    {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["slot_token"]},
)


def row(**attributes: str) -> dict[str, Any]:
    return {"pk": {"S": "RUN#1"}, "created_at": {"S": "2026-12-01"}, **{k: {"S": v} for k, v in attributes.items()}}


def test_an_item_entering_an_index_is_one_write_of_its_projection() -> None:
    new = row(status="PENDING", job="j", note="x" * 3000)
    # table: 3,046 bytes -> 3; KEYS_ONLY entry is pk + status + created_at (1 unit); ALL the whole item (3)
    assert write_cost(None, new, [KEYS_ONLY]) == (3, 1)
    assert write_cost(None, new, [ALL]) == (3, 3)
    assert write_cost(None, new, [KEYS_ONLY, ALL, INCLUDE]) == (3, 4)  # not in by-waiting: no waiting_for


def test_a_changed_index_key_is_two_writes_an_unprojected_change_none() -> None:
    before, after = row(status="PENDING", job="j"), row(status="RUNNING", job="j")
    assert KEYS_ONLY.writes(before, after) == [1, 1]  # out of the index and back in
    assert ALL.writes(before, after) == [1]  # keys the same, a projected attribute changed
    touched = row(status="PENDING", job="j", note="x")
    assert KEYS_ONLY.writes(before, touched) == []  # nothing it projects changed
    assert ALL.writes(before, touched) == [1]


def test_include_projects_its_attributes_and_a_removed_key_is_one_delete() -> None:
    waiting = row(waiting_for="slot#j", slot_token="t" * 1900)
    assert INCLUDE.writes(None, waiting) == [2]  # 1,954 bytes with the token
    assert INCLUDE.writes(waiting, {**waiting, "slot_token": {"S": "u" * 1900}}) == [2]
    granted = row()
    assert INCLUDE.writes(waiting, granted) == [2]  # leaves the index: the old entry deleted
    assert INCLUDE.writes(granted, row(note="n")) == []  # never in it


def test_writes_bill_the_larger_image_and_a_failed_condition_the_existing_item() -> None:
    small, big = row(status="A"), row(status="A", note="x" * 1500)
    assert write_cost(big, small, [])[0] == 2  # an update that shrinks the item: the larger, before
    assert write_cost(big, None, [KEYS_ONLY]) == (2, 1)  # a delete: the item and its index entry
    assert write_cost(big, big, [KEYS_ONLY], failed=True) == (2, 0)
    assert write_cost(None, None, [KEYS_ONLY], failed=True) == (1, 0)


# ------------------------------------------------------------------ transitions (Step Functions pricing)
def history(*types: str) -> list[dict[str, Any]]:
    return [{"type": t} for t in types]


def test_transitions_are_states_entered_plus_retries() -> None:
    success = history(
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSubmitted",
        "TaskSucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    )
    assert bench_cost.billed_transitions(success) == 1
    # The attempt fails twice and is retried by its own Retry, then the Catch enters a Fail state.
    retried = history(
        "ExecutionStarted",
        "TaskStateEntered",
        *["TaskScheduled", "TaskStarted", "TaskFailed"] * 3,
        "TaskStateExited",
        "FailStateEntered",
        "ExecutionFailed",
    )
    assert bench_cost.billed_transitions(retried) == 2 + 2
    # A state entered again (a loop) is a new visit: its first task is no retry.
    loop = history("TaskStateEntered", "TaskScheduled", "TaskStateExited", "TaskStateEntered", "TaskScheduled")
    assert bench_cost.billed_transitions(loop) == 2


def test_the_cost_model_and_the_stacktape_style_design() -> None:
    one = bench_cost.cost_per_million({"transitions": 1, "dynamodb_wcu": 16, "dynamodb_rcu": 8})
    assert one["transitions"] == pytest.approx(25.0)
    assert one["dynamodb_wcu"] == pytest.approx(10.0)
    assert one["dynamodb_rcu"] == pytest.approx(1.0)
    assert one["total"] == pytest.approx(36.0)
    assert bench_cost.cost_per_million(bench_cost.stacktape_style(1))["total"] == pytest.approx(25.45, abs=1e-3)
    assert bench_cost.cost_per_million(bench_cost.stacktape_style(3))["transitions"] == pytest.approx(75.0)


def test_the_highest_rate_counts_any_one_second_window() -> None:
    assert bench.max_rate([]) == 0
    assert bench.max_rate([0, 0.5, 0.99, 1.0, 1.5, 3]) == 3
    assert bench.max_rate([i * 0.05 for i in range(40)]) == 20


# ------------------------------------------------------------------ the meter on a moto server
@pytest.fixture
def metered_server(monkeypatch: pytest.MonkeyPatch) -> Any:
    from moto.core.responses import BaseResponse
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    # Whatever the meter patches is put back after the test.
    monkeypatch.setattr(BaseResponse, "call_action", BaseResponse.call_action)
    monkeypatch.setattr(DomainDispatcherApplication, "__call__", DomainDispatcherApplication.__call__)
    counts = meter.Meter()
    meter.install(counts)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = make_server("127.0.0.1", port, DomainDispatcherApplication(create_backend_app), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}", counts
    server.shutdown()


def _client(endpoint: str, appid: str | None = None) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(user_agent_appid=appid, retries={"max_attempts": 1}),
    )


def test_the_meter_counts_requests_as_dynamodb_bills_them(metered_server: Any) -> None:
    endpoint, counts = metered_server
    ddb = _client(endpoint)
    ddb.create_table(
        TableName="runs",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "status", "created_at")],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-status",
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "created_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )
    item = row(status="PENDING", note="x" * 1500)  # 1,546 bytes: 2 units
    ddb.put_item(TableName="runs", Item=item, ConditionExpression="attribute_not_exists(pk)")  # 2 + index 1
    ddb.update_item(  # status is an index key: 2 + index 2
        TableName="runs",
        Key={"pk": item["pk"]},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "RUNNING"}},
    )
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):  # failed: the existing item's 2
        ddb.put_item(TableName="runs", Item=item, ConditionExpression="attribute_not_exists(pk)")
    ddb.get_item(TableName="runs", Key={"pk": item["pk"]}, ConsistentRead=True)  # 1
    ddb.get_item(TableName="runs", Key={"pk": {"S": "RUN#none"}})  # 0.5: nothing found still costs
    _client(endpoint, "jobline-bench").get_item(TableName="runs", Key={"pk": item["pk"]})  # the bench's: not counted
    ddb.delete_item(TableName="runs", Key={"pk": item["pk"]})  # 2 + index 1
    ddb.update_item(  # another kind of item, not in the index: 1
        TableName="runs",
        Key={"pk": {"S": "QUOTA#SubmitJob#17"}},
        UpdateExpression="ADD calls :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )

    with pytest.raises(ClientError, match="ResourceNotFoundException"):  # answered as without the meter
        ddb.put_item(TableName="no-such-table", Item=item)

    taken = requests.get(endpoint + meter.METER_PATH, timeout=10).json()
    assert taken["dynamodb"] == {
        "wcu": 2 + 1 + 2 + 2 + 2 + 2 + 1 + 1,
        "index_wcu": 1 + 2 + 1,
        "writes": 5,
        "failed_conditional": 1,
        "rcu": 1.5,
        "strong_rcu": 1,
        "eventual_rcu": 0.5,
        "reads": 2,
    }
    # Whose writes: by the key's prefix and the operation, failed conditions on the item that failed.
    assert taken["dynamodb_by_kind"] == {
        "QUOTA:UpdateItem": {"writes": 1, "wcu": 1, "index_wcu": 0, "failed_conditional": 0},
        "RUN:DeleteItem": {"writes": 1, "wcu": 2 + 1, "index_wcu": 1, "failed_conditional": 0},
        "RUN:PutItem": {"writes": 2, "wcu": 2 + 1 + 2, "index_wcu": 1, "failed_conditional": 1},
        "RUN:UpdateItem": {"writes": 1, "wcu": 2 + 2, "index_wcu": 2, "failed_conditional": 0},
    }
    assert taken["calls"]["dynamodb:GetItem"] == 2
    assert taken["calls"]["dynamodb:PutItem"] == 3
    assert counts.snapshot() == taken


@pytest.mark.parametrize("needs_limit", [True, False])
def test_the_bench_catalog_is_a_valid_catalog(tmp_path: Any, needs_limit: bool) -> None:
    from jobline.catalog import load_catalog

    path = tmp_path / "bench-jobs.yaml"
    path.write_text(bench.catalog_text(needs_limit, manifest=False))
    jobs = {job.name: job for job in load_catalog(path).jobs}
    assert sorted(jobs) == sorted([*(s.job for s in bench.SCENARIOS), bench.BURST_JOB])
    assert jobs["bench-limited"].max_concurrent_runs == 1000
    assert jobs["bench-fails"].retry.attempts == 3


def test_a_burst_counts_lost_twice_throttled_and_the_submit_rate() -> None:
    def run(i: int, status: str = "SUCCEEDED", reason: str = "Job succeeded") -> dict[str, Any]:
        return {"run_id": f"r{i}", "status": status, "reason": reason, "trigger": {"source": f"s3://b/f{i}"}}

    rows = [run(0), run(1), run(2, "FAILED", "SubmitFailed"), run(3, "FAILED", "NonZeroExitCode")]
    dropped = {f"s3://b/f{i}": 100.0 + i for i in range(5)}  # f4 made no run
    # r0's attempt 1 submitted twice; r1 twice but as two attempts; a job of another burst left out
    submits = [(101.0, "r0-1"), (101.5, "r0-1"), (101.6, "r1-1"), (103.0, "r1-2"), (101.7, "other-1")]
    final = {"r0": 110.0, "r1": 111.0, "r2": 104.0, "r3": 120.0}
    figures = bench.Burst(rows, final, dropped, submits, 5, 20.0, 100.0).figures()
    assert figures["runs_created"] == 4
    assert figures["final_by_status"] == {"SUCCEEDED": 2, "FAILED": 2}
    assert figures["lost"] == 1
    assert figures["submitted_twice"] == 1
    assert figures["failed_by_throttling"] == 1  # SubmitFailed; a job's own exit code is no throttling
    assert figures["not_succeeded"] == {"FAILED: SubmitFailed": 1, "FAILED: NonZeroExitCode": 1}
    assert figures["max_submits_in_one_second"] == 3
    assert figures["drain_seconds"] == 20.0
    assert figures["runs_per_second"] == 0.2
    assert figures["drop_to_final_seconds"]["median"] == 10.0  # 10, 10, 2, 17


class QuietStack:
    """What wait_final reads of a local stack: rows, whether its pollers and computes are idle, and
    its queues' message counts, the first reads of which show a message still waiting."""

    def __init__(self, rows: list[dict[str, Any]], waiting: list[int]) -> None:
        self.rows, self.waiting = rows, waiting

    def runs(self, attributes: Any = None) -> list[dict[str, Any]]:
        return self.rows

    def status(self) -> dict[str, Any]:
        return {"lambda_idle": True, "batch_active": 0, "sqs_in_flight": 0}

    def client(self, name: str) -> Any:
        return self

    def list_queues(self) -> dict[str, Any]:
        return {"QueueUrls": ["http://local/123/jobline-SubmitBatchJobQueue", "http://local/123/jobline-DeadLetter"]}

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        assert "DeadLetter" not in QueueUrl, "a dead-letter queue's messages are no work left"
        count = self.waiting.pop(0) if self.waiting else 0
        counts = dict.fromkeys(AttributeNames, "0") | {"ApproximateNumberOfMessagesNotVisible": str(count)}
        return {"Attributes": counts}


def test_a_burst_that_lost_runs_ends_once_the_stack_is_idle_with_every_row_final(monkeypatch: Any) -> None:
    monkeypatch.setattr(bench.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(bench, "IDLE_END_SECONDS", 0.0)
    ended = "2026-12-02T00:00:00.000Z"
    final = [{"run_id": f"r{i}", "job": "j", "status": "SUCCEEDED", "updated_at": ended} for i in range(2)]
    stack = QuietStack(final, waiting=[1, 1])
    became_final = bench.wait_final(stack, "j", 3, 60, 0.0)  # type: ignore[arg-type]
    assert sorted(became_final) == ["r0", "r1"]
    assert stack.waiting == [], "it ended while a message was still waiting"


def test_a_burst_with_a_live_row_waits_for_it(monkeypatch: Any) -> None:
    monkeypatch.setattr(bench.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(bench, "IDLE_END_SECONDS", 0.0)
    rows = [{"run_id": "r0", "job": "j", "status": "RUNNING", "updated_at": "2026-12-02T00:00:00.000Z"}]
    assert bench.wait_final(QuietStack(rows, waiting=[]), "j", 3, 0.5, 0.0) == {}  # type: ignore[arg-type]


def test_an_item_kind_is_its_partition_key_up_to_the_first_hash() -> None:
    assert meter.item_kind({"pk": {"S": "ATTEMPT#r1#2"}}) == "ATTEMPT"
    assert meter.item_kind({"pk": {"S": "no-prefix"}}) == "-"
    assert meter.item_kind({}) == "-"


def test_the_bench_reports_writes_by_kind_per_run_and_the_report_shows_them() -> None:
    before = {"RUN:UpdateItem": {"writes": 10, "wcu": 10, "index_wcu": 2, "failed_conditional": 1}}
    after = {
        "RUN:UpdateItem": {"writes": 16, "wcu": 19, "index_wcu": 5, "failed_conditional": 4},
        "RUNDATA:PutItem": {"writes": 3, "wcu": 6, "index_wcu": 0, "failed_conditional": 0},
        "SLOT:UpdateItem": {"writes": 1, "wcu": 1, "index_wcu": 0, "failed_conditional": 0},
    }
    kinds = bench.by_kind(before, after, 3)
    assert list(kinds) == ["RUN:UpdateItem", "RUNDATA:PutItem", "SLOT:UpdateItem"]  # most WCU first
    assert kinds["RUN:UpdateItem"] == {"writes": 2, "wcu": 3, "index_wcu": 1, "failed_conditional": 1}
    assert kinds["RUNDATA:PutItem"] == {"writes": 1, "wcu": 2}  # nothing changed: left out
    assert bench.by_kind(after, after, 3) == {}

    lines = bench_report.kinds_table([{"dynamodb_by_kind": kinds}, "not measured"], ["before", "after"])
    table = "\n".join(lines)
    assert "| RUN:UpdateItem | 2 writes, 3 WCU (1), 1 failed |  |" in table
    assert "| RUNDATA:PutItem | 1 writes, 2 WCU (0) |  |" in table
    assert bench_report.kinds_table([{"runs": 3}], ["after"]) == []  # a tree measured without the breakdown
