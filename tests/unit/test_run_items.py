"""A run's two items: the hot row `RUN#` (small: every write of it is one write unit) and its cold
data `RUNDATA#` (trigger event, arguments, retry_of: written once, in no index); the sparse
`by-fanout` index; the reconciler starting a run from its stored data."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from jobline import reconciler, run_view
from jobline.backends import StateChangeEvent
from jobline.catalog import parse_catalog
from jobline.dal import RunTable
from jobline.deps import get_deps
from jobline.reconciler import reconcile
from jobline.runs import FanoutItem, new_row, state_machine_arn
from jobline.settings import Settings
from jobline.state_changes import apply_state_change, parse_event
from jobline.triggers import RunRequest, Trigger
from jobline_local.deploy.storage_messaging import StorageAndMessaging
from tests.aws_resources import job_spec, resource

pytestmark = pytest.mark.usefixtures("env")
WRITE_UNIT_BYTES = 1024
EVENTS = Path(__file__).parents[2] / "events"
INDEX_KEYS = {"job", "status", "record_type", "created_at", "fanout_id", "fanout_line"}
SETTINGS = Settings(
    run_table_name="runs",
    state_machine_prefix="arn:aws:states:eu-west-1:123456789012:stateMachine:jobline-production-run-",
    event_dlq_url="https://dlq",
    run_data_bucket="data",
    job_queue_on_demand_arn="arn:queue/on-demand",
    job_queue_spot_arn="arn:queue/spot",
    default_job_definition_arn="arn:def/default",
)


def item_size(item: dict[str, Any]) -> int:
    """An item's size by DynamoDB's rules: attribute names plus values; a number 1 byte per two
    significant digits plus 1; a map or list 3 bytes plus 1 per element.
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html"""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    ((kind, content),) = value.items()
    if kind == "S":
        return len(content.encode())
    if kind == "N":
        return (len(content.strip("-").replace(".", "").strip("0")) + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(v) + 1 for k, v in content.items())
    if kind == "L":
        return 3 + sum(_value_size(v) + 1 for v in content)
    raise AssertionError(f"no size rule here for {kind}")


def s3_request(**spec: Any) -> RunRequest:
    """A realistic S3 drop: a dated key, a version id and a sequencer, as S3 sends them."""
    job = parse_catalog({"jobs": [job_spec("csv-word-count", **spec)]}).jobs[0]
    bucket, key = "acme-production-jobline-input-123456789012", "incoming/2026/11/20/orders-000123.csv"
    trigger = Trigger(
        type="s3",
        key=f"s3:{bucket}:{key}:3sL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY:0055AED6DCD90281E5",
        source=f"s3://{bucket}/{key}",
        event={"detail": {"object": {"key": key, "size": 1234}, "bucket": {"name": bucket}}},
    )
    return RunRequest(job=job, trigger=trigger)


def wire(row: dict[str, Any]) -> dict[str, Any]:
    serializer = TypeSerializer()
    return {"pk": {"S": f"RUN#{row['run_id']}"}, **{k: serializer.serialize(v) for k, v in row.items()}}


def test_the_hot_row_holds_no_event_arguments_or_version() -> None:
    limited = new_row(s3_request(max_concurrent_runs=2), SETTINGS, "2026-11-20T08:00:00.000Z")
    assert {"event", "event_s3_uri", "arguments", "retry_of", "version", "execution_arn"}.isdisjoint(limited)
    assert limited["trigger"].keys() == {"type", "source"}  # its key is cold data
    assert limited["slot_job"] == "csv-word-count"
    machine = f"jobline-production-run-{s3_request(max_concurrent_runs=2).job.policy_id}"
    arn = f"arn:aws:states:eu-west-1:123456789012:execution:{machine}:{limited['run_id']}"
    assert run_view.execution_arn(limited, SETTINGS.state_machine_prefix) == arn
    request = s3_request()
    # A job without a limit (model_copy: this catalog may still default every job to one).
    request = request.model_copy(update={"job": request.job.model_copy(update={"max_concurrent_runs": None})})
    unlimited = new_row(request, SETTINGS, "2026-11-20T08:00:00.000Z", FanoutItem("fanout-1", 7))
    assert "slot_job" not in unlimited
    assert (unlimited["fanout_id"], unlimited["fanout_line"]) == ("fanout-1", 7)


def batch_event(run_id: str, status: str, second: int) -> StateChangeEvent:
    """A Batch state change of the run's first attempt, with a real job id and log stream."""
    event = json.loads((EVENTS / "batch-job-running.json").read_text())
    detail = event["detail"]
    detail.update(status=status, jobName=f"{run_id}-1", tags={**detail["tags"], "jobline:run-id": run_id})
    detail["container"]["logStreamName"] = "jobline-default/default/5b1f0c2e9d3a4b7c8e6f1a2b3c4d5e6f"
    event["time"] = f"2026-11-20T08:00:{second:02d}Z"
    if status == "STARTING":
        detail.pop("startedAt")
    if status == "SUCCEEDED":
        detail.update(stoppedAt=detail["startedAt"] + 20_000, statusReason="Essential container in task exited")
        detail["container"]["exitCode"] = 0
    return parse_event(event)


def test_a_first_attempt_row_stays_under_one_write_unit(env: dict[str, Any]) -> None:
    """The row of a realistic S3 run of a limited job, as its writes leave it (created, claimed,
    given its backend job, then its job's STARTING, RUNNING and SUCCEEDED events), is under 1 KB
    at every step: each of its writes costs one write unit."""
    deps = get_deps()
    request = s3_request(max_concurrent_runs=2)
    run_id, client = request.run_id, deps.table._client
    sizes = []

    def size() -> int:
        item = client.get_item(TableName="runs", Key={"pk": {"S": f"RUN#{run_id}"}})["Item"]
        sizes.append(item_size(item))
        return sizes[-1]

    deps.table.create_run(new_row(request, SETTINGS, "2026-11-20T08:00:00.000Z"))
    size()
    assert deps.table.claim_attempt(run_id, 1, "2026-11-20T08:00:00.120Z", lease_until=1_795_000_000) is None
    deps.table.record_backend_job(run_id, 1, "4c7599ae-0a82-49aa-ba5a-4727fcce14a8")
    size()
    for second, status in ((5, "STARTING"), (10, "RUNNING"), (30, "SUCCEEDED")):
        apply_state_change(batch_event(run_id, status, second), deps.table, None, None)
        size()
    row = deps.table.get_run(run_id)
    assert (row["status"], row["attempts"]["1"]["exit_code"]) == ("SUCCEEDED", 0)
    assert max(sizes) < WRITE_UNIT_BYTES, sizes


def test_the_size_rule_counts_as_the_aws_page_does() -> None:
    """The page's own rules on small values (name bytes + value bytes; maps 3 + 1 per element)."""
    assert item_size({"ab": {"S": "xyz"}}) == 5
    assert item_size({"n": {"N": "12345"}}) == 1 + 3 + 1
    assert item_size({"b": {"BOOL": True}}) == 2
    assert item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + (1 + 1 + 1)
    assert item_size({"m": {"M": {}}}) == 4
    assert item_size({"n": {"N": "1500"}}) == item_size({"n": {"N": "15"}})  # trailing zeroes trimmed


def test_the_run_data_is_written_once_and_carries_no_index_key(env: dict[str, Any]) -> None:
    deps = get_deps()
    request = s3_request()
    assert deps.starter.start(request).created is True
    data = deps.table.get_run_data(request.run_id)
    assert INDEX_KEYS.isdisjoint(data)
    assert json.loads(data["event"]) == request.trigger.event
    assert data["arguments"] == {"output_prefix": "results/"}
    assert data["expires_at"] == deps.table.get_run(request.run_id)["expires_at"]  # TTL on both items

    other = request.model_copy(update={"trigger": request.trigger.model_copy(update={"event": {"other": 1}})})
    assert deps.starter.start(other).created is False
    assert deps.table.get_run_data(request.run_id) == data  # never updated


class TableDeployer(StorageAndMessaging):
    """The local deployer's table creator, on the test's moto."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def client(self, service: str) -> Any:
        return self.session.client(service)

    def name(self, logical_id: str, limit: int = 64, lower: bool = False) -> str:
        return f"local-{logical_id}"[:limit]


def test_the_local_deployer_builds_keys_only_and_include_indexes(env: dict[str, Any]) -> None:
    """The local stack's table comes from template.yaml: its projections (and an INCLUDE one, as
    the slot waiters' index has) reach moto as declared, and moto answers by them."""
    props = resource("RunTable")["Properties"]
    include = {
        "IndexName": "by-waiting-test",
        "KeySchema": [{"AttributeName": "job", "KeyType": "HASH"}, {"AttributeName": "created_at", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["reason"]},
    }
    props = {**props, "GlobalSecondaryIndexes": [*props["GlobalSecondaryIndexes"], include]}
    name = TableDeployer(env["session"]).create_DynamoDB_Table("RunTable", props).ref
    ddb = env["session"].client("dynamodb")
    declared = {i["IndexName"]: i["Projection"] for i in props["GlobalSecondaryIndexes"]}
    built = {
        i["IndexName"]: i["Projection"] for i in ddb.describe_table(TableName=name)["Table"]["GlobalSecondaryIndexes"]
    }
    assert built == declared
    assert declared["by-job-keys"] == {"ProjectionType": "KEYS_ONLY"}

    table = RunTable(ddb, name)
    table.create_run(new_row(s3_request(), SETTINGS, "2026-11-20T08:00:00.000Z"))
    (item,) = ddb.query(
        TableName=name,
        IndexName="by-waiting-test",
        KeyConditionExpression="job = :j",
        ExpressionAttributeValues={":j": {"S": "csv-word-count"}},
    )["Items"]
    assert set(item) == {"pk", "job", "created_at", "reason"}


def test_runs_of_a_fanout_are_found_by_line_in_number_order(env: dict[str, Any]) -> None:
    deps = get_deps()
    job = parse_catalog({"jobs": [job_spec("csv-word-count")]}).jobs[0]

    def start(key: str, fanout: FanoutItem | None) -> str:
        trigger = Trigger(type="manual", key=key, source="manifest", event={})
        return deps.starter.start(RunRequest(job=job, trigger=trigger), fanout=fanout).run_id

    lines = {line: start(f"line-{line}", FanoutItem("fanout-1", line)) for line in (10, 2, 1)}
    start("another-fanout", FanoutItem("fanout-2", 1))
    start("no-fanout", None)

    items = deps.table._client.query(
        TableName="runs",
        IndexName="by-fanout",
        KeyConditionExpression="fanout_id = :f",
        ExpressionAttributeValues={":f": {"S": "fanout-1"}},
    )["Items"]
    assert [item["pk"]["S"] for item in items] == [f"RUN#{lines[n]}" for n in (1, 2, 10)]
    assert all(set(item) == {"pk", "fanout_id", "fanout_line"} for item in items)


def test_the_reconciler_starts_a_never_started_run_from_its_stored_data(env: dict[str, Any]) -> None:
    deps = get_deps()
    trigger = Trigger(type="manual", key="manual:1", source="test", event={"big": "x" * 7000})
    request = RunRequest(job=deps.catalog.get("csv-word-count"), trigger=trigger)
    start_never_starting(request)
    sfn = deps.starter._sfn
    reads: list[str] = []
    deps.table._client.meta.events.register("before-call.dynamodb.*", lambda model, **_: reads.append(model.name))

    outcome = reconcile(deps, timedelta(0), datetime.now(UTC) + timedelta(hours=1))

    assert outcome == {request.run_id: "started: its execution had never started"}
    arn = run_view.execution_arn(deps.table.get_run(request.run_id), deps.settings.state_machine_prefix)
    execution_input = json.loads(sfn.describe_execution(executionArn=arn)["input"])
    overrides = execution_input["request"]["params"]["containerOverrides"]
    environment = {item["name"]: item["value"] for item in overrides["environment"]}
    assert environment["JOBLINE_TRIGGER_EVENT_S3_URI"] == deps.table.get_run_data(request.run_id)["event_s3_uri"]
    assert reads[:3] == ["Query", "BatchGetItem", "GetItem"]  # the PENDING keys, their rows, the run's data


def test_the_reconciler_lists_running_executions_instead_of_describing_each_waiting_run(env: dict[str, Any]) -> None:
    """Runs waiting for submit capacity are PENDING, unwritten since their start: a sweep lists the
    running executions (1,000 a call) and describes none of them; a run whose execution never
    started is still found and started."""
    deps = get_deps()
    job = deps.catalog.get("csv-word-count")
    waiting = [deps.starter.start(RunRequest(job=job, trigger=manual(n))).run_id for n in range(3)]
    start_never_starting(RunRequest(job=job, trigger=manual(9)))
    calls: list[str] = []
    deps.client("stepfunctions").meta.events.register(
        "before-call.states.*", lambda model, **_: calls.append(model.name)
    )

    outcome = reconcile(deps, timedelta(0), datetime.now(UTC) + timedelta(hours=1))

    assert {run_id: outcome[run_id] for run_id in waiting} == dict.fromkeys(waiting, "unchanged")
    assert sorted(set(outcome.values())) == ["started: its execution had never started", "unchanged"]
    assert calls.count("DescribeExecution") == 1  # the unstarted run's, found missing
    machines = {state_machine_arn(deps.settings, job) for job in deps.catalog.jobs}
    assert calls.count("ListExecutions") == len(machines)


def manual(n: int) -> Trigger:
    return Trigger(type="manual", key=f"manual:{n}", source="test", event={})


def start_never_starting(request: RunRequest) -> str:
    """A run whose row and data are written but whose StartExecution fails: its run id."""
    sfn = get_deps().starter._sfn

    def unavailable(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "StartExecution")

    sfn.meta.events.register("before-call.states.StartExecution", unavailable)
    try:
        with pytest.raises(ClientError, match="ServiceUnavailable"):
            get_deps().starter.start(request)
    finally:
        sfn.meta.events.unregister("before-call.states.StartExecution", unavailable)
    return request.run_id


def seconds_left_by_heals(*seconds: float) -> Callable[[], float]:
    """The invocation's time left: `seconds[n]` once n runs have been healed (started), the last after."""
    heals = []
    get_deps().starter._sfn.meta.events.register("before-call.states.StartExecution", lambda **_: heals.append(1))
    return lambda: seconds[min(len(heals), len(seconds) - 1)]


def test_a_sweep_stops_between_pages_of_rows_that_need_no_heal(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of fresh PENDING rows (here three, a page each) yield nothing to heal, so only a
    check between their pages keeps a slow index from running the sweep into its timeout."""
    deps = get_deps()
    job = deps.catalog.get("csv-word-count")
    for n in range(3):
        start_never_starting(RunRequest(job=job, trigger=manual(n)))
    monkeypatch.setattr(reconciler, "ROW_PAGE_SIZE", 1)
    pages: list[str] = []
    deps.table._client.meta.events.register("before-call.dynamodb.Query", lambda **_: pages.append("page"))

    def time_left() -> float:  # 100 s for listing the executions and the first two pages, then 5 s
        return 100.0 if len(pages) < 2 else 5.0

    outcome = reconcile(deps, timedelta(hours=1), datetime.now(UTC), time_left=time_left)

    assert outcome == {reconciler.CUT_SHORT: "cut short for time at a page of PENDING runs"}


def test_a_sweep_stops_between_pages_of_running_executions(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partial list of the running executions would make the unlisted ones look dead: a sweep
    out of time while listing stops there, healing nothing."""
    deps = get_deps()
    job = deps.catalog.get("csv-word-count")
    for n in range(2):
        deps.starter.start(RunRequest(job=job, trigger=manual(n)))
    start_never_starting(RunRequest(job=job, trigger=manual(9)))
    monkeypatch.setattr(reconciler, "LIST_PAGE_SIZE", 1)
    left = iter([100.0, 5.0])

    outcome = reconcile(deps, timedelta(0), datetime.now(UTC) + timedelta(hours=1), time_left=lambda: next(left))

    assert outcome == {reconciler.CUT_SHORT: "cut short for time at a page of running executions"}


def test_a_sweep_stops_between_the_rows_of_long_running_executions(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst's thousands of long waits are each read to find the ended ones among them, and
    yield nothing: each read is a step, so the sweep stops between them when time runs out."""
    deps = get_deps()
    job = deps.catalog.get("csv-word-count")
    for n in range(3):
        deps.starter.start(RunRequest(job=job, trigger=manual(n)))
    reads: list[str] = []
    get_run = deps.table.get_run
    monkeypatch.setattr(deps.table, "get_run", lambda run_id, **kw: reads.append(run_id) or get_run(run_id, **kw))

    outcome = reconcile(
        deps, timedelta(minutes=30), datetime.now(UTC) + timedelta(hours=1), time_left=lambda: 5.0 if reads else 100.0
    )

    assert outcome.pop(reconciler.CUT_SHORT).startswith("cut short for time at the row of csv-word-count-")
    assert len(reads) == 1
    assert set(outcome.values()) <= {"unchanged"}


def test_a_sweep_with_no_time_left_stops_before_the_next_heal(env: dict[str, Any]) -> None:
    """Three runs whose executions never started; the invocation has 30 s, 30 s, then 5 s left
    (under the 10 s margin) as the sweep comes to each: two are started, the sweep stops cleanly
    with what it did and where it stopped, and the next sweep starts the third."""
    deps = get_deps()
    job = deps.catalog.get("csv-word-count")
    unstarted = [start_never_starting(RunRequest(job=job, trigger=manual(n))) for n in range(3)]
    later = datetime.now(UTC) + timedelta(hours=1)

    outcome = reconcile(deps, timedelta(0), later, time_left=seconds_left_by_heals(30.0, 30.0, 5.0))

    assert outcome.pop(reconciler.CUT_SHORT).startswith("cut short for time at stale run ")
    assert list(outcome.values()) == ["started: its execution had never started"] * 2
    (rest,) = set(unstarted) - set(outcome)
    again = reconcile(deps, timedelta(0), later)
    assert again == {rest: "started: its execution had never started"} | dict.fromkeys(outcome, "unchanged")


def test_a_sweep_stops_when_less_than_twice_its_slowest_step_is_left(env: dict[str, Any]) -> None:
    """Slow calls: the sweep's first step took 40 s of the 100 s it had, so with 60 s left (more
    than the 10 s margin) it starts no other heal, which might not end before the invocation does."""
    deps = get_deps()
    job = deps.catalog.get("csv-word-count")
    for n in range(3):
        start_never_starting(RunRequest(job=job, trigger=manual(n)))
    later = datetime.now(UTC) + timedelta(hours=1)

    outcome = reconcile(deps, timedelta(0), later, time_left=seconds_left_by_heals(100.0, 60.0))

    assert outcome.pop(reconciler.CUT_SHORT).startswith("cut short for time at stale run ")
    assert list(outcome.values()) == ["started: its execution had never started"]
