"""A fan-out on the local stack: a manifest of 100 lines dropped in S3 becomes one run per good line,
each created once and each final, its bad lines rejected alone, and a duplicate delivery of the
manifest's event makes no second run. The counts on its FANOUT# record add up. (10,000 items: the
bench's `--manifest 10000`, docs/PERFORMANCE.md; a burst under a low submit quota:
test_limits_local.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobline.fanouts import fanout_id
from jobline.runs import TERMINAL
from tests.e2e.conftest import Stack, unique

pytestmark = pytest.mark.e2e
ITEMS = 100


def fanout_record(stack: Stack, fid: str) -> dict[str, Any] | None:
    from jobline.dal import _from_item

    item = stack.client("dynamodb").get_item(
        TableName=stack.local.output("RunTableName"), Key={"pk": {"S": f"FANOUT#{fid}"}}, ConsistentRead=True
    )
    return _from_item(item["Item"]) if "Item" in item else None


def rule_delivery(stack: Stack, key: str, head: dict[str, Any]) -> dict[str, Any]:
    """The manifest rule's delivery of this object's Object Created event, as EventBridge sends it."""
    detail = {
        "version": "0",
        "bucket": {"name": stack.bucket},
        "object": {"key": key, "size": head["ContentLength"], "etag": head["ETag"], "version-id": head["VersionId"]},
        "request-id": "dup",
        "requester": "123456789012",
        "source-ip-address": "127.0.0.1",
        "reason": "PutObject",
    }
    event = {
        "version": "0",
        "id": "a-redelivered-event",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-12-01T00:00:00Z",
        "region": stack.local.region,
        "resources": [f"arn:aws:s3:::{stack.bucket}"],
        "detail": detail,
    }
    return {"job": "greet", "trigger": 0, "event": event}


def test_a_manifest_fans_out_into_one_final_run_per_good_line(stack: Stack) -> None:
    key = f"manifests/{unique('e2e')}.csv"
    lines = ["name"] + [f"person-{n}" for n in range(ITEMS)]
    lines[50] = "too,many,fields"  # line 51
    lines[80] = "x" * 65  # line 81: over the parameter's max_length 64
    s3 = stack.client("s3")
    s3.put_object(Bucket=stack.bucket, Key=key, Body=("\n".join(lines) + "\n").encode())
    head = s3.head_object(Bucket=stack.bucket, Key=key)
    fid = fanout_id("greet", f"manifest:{stack.bucket}:{key}:{head['VersionId']}")

    # Bounds for a busy machine: the whole local stack shares one moto server.
    record = stack.local.wait_for(
        lambda: (r := fanout_record(stack, fid)) and r["state"] == "QUEUED" and r, 600, what="the manifest read"
    )
    assert (record["item_count"], record["queued"], record["rejected"]) == (ITEMS, ITEMS - 2, 2)
    stack.client("sqs").send_message(  # the same event delivered again
        QueueUrl=stack.local.output("FanoutRequestQueueUrl"), MessageBody=json.dumps(rule_delivery(stack, key, head))
    )

    def all_final() -> list[dict[str, Any]] | None:
        mine = [r for r in stack.runs() if r.get("fanout_id") == fid]
        return mine if len(mine) == ITEMS - 2 and all(r["status"] in TERMINAL for r in mine) else None

    runs = stack.local.wait_for(all_final, 1500, interval=2, what=f"{ITEMS - 2} final runs of the fan-out")
    assert sorted(r["fanout_line"] for r in runs) == [n for n in range(2, ITEMS + 2) if n not in (51, 81)]
    assert {r["status"] for r in runs} == {"SUCCEEDED"}
    assert len({r["run_id"] for r in runs}) == ITEMS - 2
    assert {r["trigger"]["type"] for r in runs} == {"manifest"}

    def counted() -> dict[str, Any] | None:
        r = fanout_record(stack, fid)
        return r if r and r["ended"].get("SUCCEEDED") == ITEMS - 2 else None

    # The notify function takes the stream's records one after another (about 1 s each on a busy
    # machine's local stack), so the counts trail the runs' ends.
    try:
        final = stack.local.wait_for(counted, 1200, what="the fan-out's counts by final status")
    except TimeoutError:
        pytest.fail(f"the fan-out's counts never reached {ITEMS - 2} SUCCEEDED: {fanout_record(stack, fid)}")
    assert (final["rejected"], final["ended"]) == (2, {"SUCCEEDED": ITEMS - 2})
    assert len([r for r in stack.runs() if r.get("fanout_id") == fid]) == ITEMS - 2  # the duplicate made none
    parked = stack.peek("EventDeadLetterQueueUrl")
    lines_parked = {
        json.loads(m["Body"])["event"]["line"]
        for m in parked
        if json.loads(m["Body"]).get("event", {}).get("fanout_id") == fid
    }
    assert lines_parked == {51, 81}
