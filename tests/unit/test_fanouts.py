"""Fan-outs on moto: a manifest read line by line into queued items, each item one run, once;
bad lines rejected alone with their line number and reason; redeliveries, continuations, the size
limit and a stop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobline import deps as deps_module
from jobline import manifests
from jobline import settings as settings_module
from jobline.deps import get_deps
from jobline.fanout_store import FanoutStore
from jobline.fanouts import FanoutReader, FanoutWorker, fanout_id
from tests.aws_resources import job_spec, sqs_record
from tests.unit.conftest import LambdaContext, dlq_messages, load_handler

BUCKET = "input"
FANOUT_JOBS = [
    job_spec(
        "resize",
        parameters={"image": {"required": True, "max_length": 40}, "width": {"default": "100"}},
        triggers={"manifest": [{"prefix": "manifests/", "format": "csv"}, {"prefix": "lists/", "format": "jsonl"}]},
    ),
    job_spec(
        "mapped",
        parameters={"image": {"required": True}},
        triggers={"manifest": [{"prefix": "mapped/", "format": "jsonl", "arguments": {"image": "file.path"}}]},
    ),
]


@pytest.fixture
def fan(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    catalog = tmp_path / "fanout-jobs.yaml"
    catalog.write_text(yaml.safe_dump({"jobs": FANOUT_JOBS}))
    session = env["session"]
    sqs = session.client("sqs")
    requests = sqs.create_queue(QueueName="fanout-requests")["QueueUrl"]
    items = sqs.create_queue(QueueName="fanout-items")["QueueUrl"]
    session.client("s3").create_bucket(Bucket=BUCKET)
    for key, value in {
        "CATALOG_PATH": str(catalog),
        "FANOUT_REQUEST_QUEUE_URL": requests,
        "FANOUT_QUEUE_URL": items,
        "INPUT_BUCKET": BUCKET,
    }.items():
        monkeypatch.setenv(key, value)
    settings_module.get_settings.cache_clear()
    deps_module.get_deps.cache_clear()
    return {**env, "requests": requests, "items": items}


def put(env: dict[str, Any], key: str, body: str | bytes) -> dict[str, Any]:
    """The object, and the rule delivery its Object Created event makes."""
    s3 = env["session"].client("s3")
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)
    etag = s3.head_object(Bucket=BUCKET, Key=key)["ETag"]
    detail = {
        "version": "0",
        "bucket": {"name": BUCKET},
        "object": {"key": key, "size": 1, "etag": etag},
        "request-id": "r-1",
        "requester": "123456789012",
        "source-ip-address": "1.2.3.4",
        "reason": "PutObject",
    }
    index = 0 if key.startswith(("manifests/", "mapped/")) else 1
    event = {
        "version": "0",
        "id": "e-1",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-12-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{BUCKET}"],
        "detail": detail,
    }
    return {"job": "mapped" if key.startswith("mapped/") else "resize", "trigger": index, "event": event}


def read(delivery: dict[str, Any] | str, time_left: Any = lambda: 900.0, message_id: str = "m-1") -> dict[str, Any]:
    body = delivery if isinstance(delivery, str) else json.dumps(delivery)
    return FanoutReader(get_deps(), time_left).handle(body, message_id)


def drain(env: dict[str, Any], queue: str) -> list[str]:
    sqs, bodies = env["session"].client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=env[queue], MaxNumberOfMessages=10).get("Messages", []):
        bodies += [m["Body"] for m in messages]
        sqs.delete_message_batch(
            QueueUrl=env[queue],
            Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)],
        )
    return bodies


def work(bodies: list[str]) -> list[str]:
    worker = FanoutWorker(get_deps(), lambda: 30.0)
    return [worker.start(body) for body in bodies]


def record(fid: str) -> dict[str, Any]:
    found = FanoutStore(get_deps().client("dynamodb"), "runs").get(fid)
    assert found is not None
    return found


def run_rows(env: dict[str, Any]) -> list[dict[str, Any]]:
    table = get_deps().table
    items = env["session"].client("dynamodb").scan(TableName="runs")["Items"]
    return [table.get_run(i["pk"]["S"].removeprefix("RUN#")) for i in items if i["pk"]["S"].startswith("RUN#")]


def arguments(row: dict[str, Any]) -> dict[str, str]:
    """A run's arguments: its cold RUNDATA# item holds them, not the row."""
    data = get_deps().table.get_run_data(row["run_id"])
    assert data is not None
    return data["arguments"]


def test_a_csv_manifest_with_a_header_makes_one_run_per_line(fan: dict[str, Any]) -> None:
    delivery = put(fan, "manifests/a.csv", "image,width\ncat.png,200\ndog.png,\n\nemu.png,50\n")
    result = read(delivery)

    assert (result["state"], result["queued"], result["rejected"]) == ("QUEUED", 3, 0)
    run_ids = work(drain(fan, "items"))
    rows = {row["fanout_line"]: row for row in run_rows(fan)}
    assert sorted(rows) == [2, 3, 5]  # lines as an editor numbers them, the header is line 1
    assert arguments(rows[2]) == {"image": "cat.png", "width": "200"}
    assert arguments(rows[3]) == {"image": "dog.png", "width": "100"}  # an empty cell: the default
    assert {row["trigger"]["type"] for row in rows.values()} == {"manifest"}
    assert rows[5]["trigger"]["source"] == f"s3://{BUCKET}/manifests/a.csv line 5"
    assert sorted(run_ids) == sorted(row["run_id"] for row in rows.values())
    fid = result["fanout_id"]
    assert {row["fanout_id"] for row in rows.values()} == {fid}
    saved = record(fid)
    assert (saved["item_count"], saved["queued"], saved["rejected"]) == (3, 3, 0)
    assert FanoutStore(get_deps().client("dynamodb"), "runs").count_runs(fid) == 3
    assert saved["manifest"] == f"s3://{BUCKET}/manifests/a.csv"


def test_bad_lines_are_rejected_alone_with_their_line_and_reason(fan: dict[str, Any]) -> None:
    lines = [
        '{"image": "a.png"}',  # 1 good
        "{not json",  # 2
        "[1, 2]",  # 3
        '{"image": "b.png", "colour": "red"}',  # 4 undeclared
        '{"width": "5"}',  # 5 missing the required image
        '{"image": "' + "x" * 41 + '"}',  # 6 over max_length
        '{"image": {"nested": 1}}',  # 7 not a scalar
        '{"image": "c.png", "width": 300}',  # 8 good (a number as JSON writes it)
    ]
    body = ("\n".join(lines) + "\n").encode() + b'{"image": "\xff"}\n' + b'{"image": "' + b"y" * 70_000 + b'"}\n'
    result = read(put(fan, "lists/b.jsonl", body))

    assert (result["queued"], result["rejected"]) == (2, 8)
    parked = {m["event"]["line"]: m for m in dlq_messages(fan)} | {m["event"]["line"]: m for m in dlq_messages(fan)}
    assert sorted(parked) == [2, 3, 4, 5, 6, 7, 9, 10]
    reasons = {line: m["reason"] for line, m in parked.items()}
    assert "line 2 is not JSON" in reasons[2]
    assert "line 3 is a JSON list, not an object" in reasons[3]
    assert "line 4" in reasons[4]
    assert "does not declare parameters ['colour']" in reasons[4]
    assert "requires parameter 'image'" in reasons[5]
    assert "over its max_length 40" in reasons[6]
    assert "must be a scalar" in reasons[7]
    assert "line 9 is not UTF-8" in reasons[9]
    assert f"line 10 is over {manifests.MAX_LINE_BYTES} bytes" in reasons[10]
    assert {m["source"] for m in parked.values()} == {"fanout"}
    assert all(m["event"]["manifest"] == f"s3://{BUCKET}/lists/b.jsonl" for m in parked.values())
    work(drain(fan, "items"))
    assert sorted((r["fanout_line"], arguments(r)["image"]) for r in run_rows(fan)) == [(1, "a.png"), (8, "c.png")]
    assert record(result["fanout_id"])["rejected"] == 8


def test_the_trigger_maps_item_fields_to_parameters(fan: dict[str, Any]) -> None:
    result = read(put(fan, "mapped/c.jsonl", '{"file": {"path": "p.png"}, "other": 1}\n'))

    assert result["queued"] == 1
    work(drain(fan, "items"))
    assert [arguments(row) for row in run_rows(fan)] == [{"image": "p.png"}]


def test_a_redelivered_manifest_and_a_redelivered_item_make_no_second_run(fan: dict[str, Any]) -> None:
    delivery = put(fan, "manifests/d.csv", "image\na.png\nb.png\n")
    first = read(delivery)
    again = read(delivery, message_id="m-2")  # the same Object Created event delivered twice

    assert first["fanout_id"] == again["fanout_id"]
    assert again == {"fanout_id": first["fanout_id"], "state": "QUEUED"}
    bodies = drain(fan, "items")
    assert len(bodies) == 2
    started = work(bodies + bodies)  # every item message delivered twice
    assert started[:2] == started[2:]
    assert len(run_rows(fan)) == 2
    assert FanoutStore(get_deps().client("dynamodb"), "runs").count_runs(first["fanout_id"]) == 2


def test_a_reader_out_of_time_goes_on_in_a_new_invocation(fan: dict[str, Any]) -> None:
    body = "image\n" + "".join(f"i{n}.png\n" for n in range(25))
    delivery = put(fan, "manifests/e.csv", body)
    budget = iter([900.0] * 10 + [1.0])  # out of time after 10 lines

    first = read(delivery, time_left=lambda: next(budget))
    assert first["continued"] is True
    assert first["lines_read"] == 11  # the header and 10 items
    (continuation,) = drain(fan, "requests")
    assert json.loads(continuation) == {"fanout_id": first["fanout_id"]}
    second = read(continuation, message_id="m-2")
    assert (second["state"], second["queued"]) == ("QUEUED", 25)
    work(drain(fan, "items"))
    assert sorted(row["fanout_line"] for row in run_rows(fan)) == list(range(2, 27))


def test_a_reader_that_died_is_resumed_from_its_last_checkpoint(
    fan: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request message comes back after the dead reader's lease: nothing before the checkpoint
    is queued again, and what was queued after it makes no second run."""
    from jobline import fanouts

    monkeypatch.setattr(fanouts, "CHECKPOINT_LINES", 4)
    delivery = put(fan, "manifests/f.csv", "image\n" + "".join(f"i{n}.png\n" for n in range(10)))
    budget = iter([900.0] * 6)

    with pytest.raises(StopIteration):  # the reader dies after 6 lines (checkpoint after 4)
        read(delivery, time_left=lambda: next(budget))
    store = FanoutStore(get_deps().client("dynamodb"), "runs")
    (item,) = [
        i
        for i in fan["session"].client("dynamodb").scan(TableName="runs")["Items"]
        if i["pk"]["S"].startswith("FANOUT#")
    ]
    fid = item["pk"]["S"].removeprefix("FANOUT#")
    assert record(fid)["lines_read"] == 4
    fan["session"].client("dynamodb").update_item(  # the lease runs out
        TableName="runs",
        Key={"pk": {"S": f"FANOUT#{fid}"}},
        UpdateExpression="SET lease_until = :z",
        ExpressionAttributeValues={":z": {"N": "0"}},
    )
    resumed = read(delivery, message_id="m-1")
    assert (resumed["state"], resumed["queued"]) == ("QUEUED", 10)
    work(drain(fan, "items"))
    assert sorted(row["fanout_line"] for row in run_rows(fan)) == list(range(2, 12))
    assert store.count_runs(fid) == 10


def test_a_manifest_over_the_supported_size_is_refused_whole(
    fan: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manifests, "MAX_ITEMS", 3)
    result = read(put(fan, "manifests/g.csv", "image\na\nb\nc\nd\n"))

    assert result["state"] == "REJECTED"
    saved = record(result["fanout_id"])
    assert "over 3 items" in saved["reason"]
    (parked,) = dlq_messages(fan)
    assert (parked["code"], parked["source"]) == ("ManifestRefused", "fanout")
    assert parked["event"]["manifest"] == f"s3://{BUCKET}/manifests/g.csv"
    assert drain(fan, "items") == []

    monkeypatch.setattr(manifests, "MAX_MANIFEST_BYTES", 10)
    big = read(put(fan, "manifests/h.csv", "image\na-long-name\n"))
    assert "over the 10 bytes (1 GiB) supported" in record(big["fanout_id"])["reason"]


def test_a_message_lists_its_items(fan: dict[str, Any]) -> None:
    message = {"job": "resize", "trigger": 1, "items": [{"image": "a"}, 5, {"image": "b"}], "idempotency_key": "k1"}
    result = read(message)

    assert (result["queued"], result["rejected"]) == (2, 1)
    assert result["fanout_id"] == fanout_id("resize", "message:k1")
    assert "line 2 is a JSON int" in dlq_messages(fan)[0]["reason"]
    assert read(message, message_id="m-2")["state"] == "QUEUED"  # the same key: the same fan-out
    work(drain(fan, "items"))
    assert len(run_rows(fan)) == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "must be JSON"),
        (json.dumps({"job": "resize"}), "either items"),
        (json.dumps({"job": "nope", "items": [{}]}), "unknown job 'nope'"),
        (json.dumps({"job": "resize", "trigger": 5, "items": [{}]}), "declares no triggers.manifest[5]"),
        (json.dumps({"job": "resize", "manifest": "s3://elsewhere/m.csv"}), "read from the input bucket"),
        (json.dumps({"job": "resize", "manifest": f"s3://{BUCKET}/missing.csv"}), "cannot be read"),
    ],
)
def test_a_bad_request_is_rejected_to_the_dlq(fan: dict[str, Any], body: str, reason: str) -> None:
    result = read(body)

    assert reason in result["rejected"]["reason"]
    (parked,) = dlq_messages(fan)
    assert reason in parked["reason"]


def test_the_functions_take_sqs_batches(fan: dict[str, Any]) -> None:
    delivery = put(fan, "manifests/i.csv", "image\na\nb\n")
    record_ = sqs_record(delivery, "m-9", "arn:aws:sqs:us-east-1:123456789012:fanout-requests")
    assert load_handler("fanout").handler({"Records": [record_]}, LambdaContext()) == {"batchItemFailures": []}
    items = [{**record_, "messageId": f"i-{n}", "body": body} for n, body in enumerate(drain(fan, "items"))]
    items.append({**record_, "messageId": "bad", "body": "{}"})
    assert load_handler("fanout_worker").handler({"Records": items}, LambdaContext()) == {"batchItemFailures": []}
    assert len(run_rows(fan)) == 2
    assert any("fanout_id" in m["reason"] for m in dlq_messages(fan))
    # An invocation that is not an SQS batch is rejected into the event DLQ, not raised.
    for function in ("fanout", "fanout_worker"):
        answer = load_handler(function).handler({"not": "an SQS batch"}, LambdaContext())
        assert answer["batchItemFailures"] == []
        assert "not an SQS batch" in answer["rejected"]["reason"]


def test_a_worker_short_of_time_hands_its_remaining_items_back(fan: dict[str, Any]) -> None:
    """The items it could not start fail alone (SQS redelivers them); those it started stay done."""
    from jobline.fanouts import ItemDeferred

    read(put(fan, "manifests/j.csv", "image\na\nb\nc\n"))
    bodies = drain(fan, "items")
    budget = iter([30.0, 30.0, 5.0])
    worker = FanoutWorker(get_deps(), lambda: next(budget))

    assert worker.start(bodies[0]).startswith("resize-")
    assert worker.start(bodies[1]).startswith("resize-")
    with pytest.raises(ItemDeferred):
        worker.start(bodies[2])
    assert len(run_rows(fan)) == 2
    assert work(bodies) == [row["run_id"] for row in sorted(run_rows(fan), key=lambda r: r["fanout_line"])]


def stream_record(before: dict[str, Any], after: dict[str, Any], sequence: str) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    typed = TypeSerializer().serialize
    return {
        "eventID": sequence,
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/runs/stream/x",
        "dynamodb": {
            "ApproximateCreationDateTime": 1764547200,
            "Keys": {"pk": {"S": f"RUN#{after['run_id']}"}},
            "OldImage": {k: typed(v) for k, v in before.items()},
            "NewImage": {k: typed(v) for k, v in after.items()},
            "SequenceNumber": sequence,
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


def test_each_run_end_is_counted_on_its_fanout_by_final_status(fan: dict[str, Any]) -> None:
    from jobline import notifications

    result = read(put(fan, "manifests/k.csv", "image\na\nb\nc\n"))
    work(drain(fan, "items"))
    session = fan["session"]
    session.client("events").create_event_bus(Name="jobs")
    redrive = session.client("sqs").create_queue(QueueName="redrive")["QueueUrl"]
    notifier = notifications.Notifier(
        events=session.client("events"),
        sns=session.client("sns"),
        sqs=session.client("sqs"),
        bus="jobs",
        failure_topic_arn="",
        redrive_queue_url=redrive,
        state_machine_prefix="arn:aws:states:us-east-1:123456789012:stateMachine:jobline-run-",
        fanouts=FanoutStore(session.client("dynamodb"), "runs"),
    )
    rows = sorted(run_rows(fan), key=lambda r: r["fanout_line"])
    ends = ["SUCCEEDED", "FAILED", "SUCCEEDED"]
    records = [
        stream_record({**row, "status": "RUNNING"}, {**row, "status": status, "reason": "x"}, str(n))
        for n, (row, status) in enumerate(zip(rows, ends, strict=True))
    ]
    other = {**rows[0], "run_id": "solo-00000000000000000000"}
    del other["fanout_id"], other["fanout_line"]
    records.append(stream_record({**other, "status": "RUNNING"}, {**other, "status": "FAILED"}, "9"))

    assert notifications.process_stream({"Records": records}, notifier) == {"batchItemFailures": []}
    assert record(result["fanout_id"])["ended"] == {"SUCCEEDED": 2, "FAILED": 1}
    notifications.process_stream({"Records": records}, notifier)  # the stream retries the batch
    assert record(result["fanout_id"])["ended"] == {"SUCCEEDED": 2, "FAILED": 1}


def test_an_operator_starts_lists_gets_and_stops_a_fanout(fan: dict[str, Any]) -> None:
    from jobline.fanout_operations import FanoutOperations
    from jobline.operations import Operations

    deps = get_deps()
    ops = FanoutOperations(deps, Operations(deps))
    started = ops.start("resize", items=[{"image": "a"}, {"image": "b"}, {"image": "c"}], client_token="t-1")
    assert started["manifest"] == f"s3://run-data/fanout-items/{started['fanout_id']}.jsonl"
    (request,) = drain(fan, "requests")
    read(request, message_id="any")  # the fan-out function takes it
    assert ops.start("resize", items=[{"image": "a"}], client_token="t-1")["fanout_id"] == started["fanout_id"]

    fid = started["fanout_id"]
    bodies = drain(fan, "items")
    work(bodies[:2])  # two runs created, the third item still queued
    shown = ops.get(fid)
    assert (shown["item_count"], shown["queued"], shown["created"], shown["running"]) == (3, 3, 2, 2)
    assert [f["fanout_id"] for f in ops.list()["fanouts"]] == [fid]

    stopped = ops.stop(fid)
    assert stopped["state"] == "STOPPED"
    assert sorted(stopped["stopped_runs"]) == sorted(r["run_id"] for r in run_rows(fan))
    assert {r["status"] for r in run_rows(fan)} == {"STOPPED"}
    assert work(bodies[2:]) == ["skipped"]  # the queued item makes no run
    assert len(run_rows(fan)) == 2
    with pytest.raises(Exception, match="no fan-out"):
        ops.get("resize-00000000000000000000")
