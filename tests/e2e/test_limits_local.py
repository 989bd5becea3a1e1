"""The reshaped run's two limits end to end on a local stack of their own (started through the
bench's meter, which records every accepted backend submit): a job's concurrency slots, taken by
the execution's AcquireSlot and handed on by the run table's stream (RunStreamFunction), and a
low SubmitJob quota (the local Batch refuses calls over JOBLINE_QUOTA_SUBMITJOB as AWS does; the
submitter keeps to the SubmitJobRate parameter)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from jobline import quota
from jobline_local.bench import Burst, drop, max_rate, point, wait_final
from jobline_local.bench_trees import working_tree
from jobline_local.client import LocalStack

pytestmark = pytest.mark.e2e
SUBMIT_RATE = 2  # SubmitJob calls per second: the local quota and the stack's SubmitJobRate
LIMITED, LIMIT, LIMITED_RUNS = "e2e-limited", 2, 10
BURST, BURST_FILES = "e2e-burst", 50
BACKEND = "backend: {type: batch, capacity: on_demand, vcpu: 0.25, memory_mib: 512}"
CATALOG = f"""jobs:
  - name: {LIMITED}
    description: Lasts a few seconds; two at a time.
    {BACKEND}
    timeout_seconds: 120
    max_concurrent_runs: {LIMIT}
    triggers: {{s3: [{{prefix: e2e/{LIMITED}/}}]}}
    local_command: ["sleep", "2"]
  - name: {BURST}
    description: Does nothing but exit.
    {BACKEND}
    timeout_seconds: 120
    triggers: {{s3: [{{prefix: e2e/{BURST}/}}]}}
    local_command: ["true"]
"""


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state = tmp_path_factory.mktemp("limits-stack")
    catalog = state / "jobs.yaml"
    catalog.write_text(CATALOG)
    stack = working_tree().stack(
        catalog,
        state / "state",
        {"JOBLINE_QUOTA_SUBMITJOB": str(SUBMIT_RATE)},
        parameters={"SubmitJobRate": str(SUBMIT_RATE)},
    )
    stack.start(timeout=180)
    try:
        yield stack
    finally:
        stack.stop()


def rows_of(local: LocalStack, job: str) -> list[dict[str, Any]]:
    return [r for r in local.runs() if r.get("job") == job]


class SlotSampler(threading.Thread):
    """Reads the job's SLOT# item (strongly consistent) until stopped: the most holders seen at
    once, and when each run was first seen holding a slot (the sample's number)."""

    def __init__(self, local: LocalStack, job: str) -> None:
        super().__init__(daemon=True)
        self.dynamodb, self.table = local.client("dynamodb"), local.output("RunTableName")
        self.key = {"pk": {"S": f"SLOT#{job}"}}
        self.most, self.samples, self.first_seen = 0, 0, {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            item = self.dynamodb.get_item(TableName=self.table, Key=self.key, ConsistentRead=True).get("Item", {})
            holders = item.get("holders", {}).get("M", {})
            self.samples += 1
            self.most = max(self.most, len(holders))
            for run_id in holders:
                self.first_seen.setdefault(run_id, self.samples)
            time.sleep(0.05)


def test_a_limited_job_runs_two_at_a_time_and_hands_slots_on_in_creation_order(local: LocalStack) -> None:
    sampler = SlotSampler(local, LIMITED)
    sampler.start()
    s3, bucket = local.client("s3"), local.output("InputBucketName")
    created: list[str] = []
    try:
        # One at a time, each once it holds a slot or waits for one: creation order is arrival order.
        for i in range(LIMITED_RUNS):
            s3.put_object(Bucket=bucket, Key=f"e2e/{LIMITED}/file-{i:02d}.csv", Body=b"row\n")

            def arrived(i: int = i) -> dict[str, Any] | None:
                for row in rows_of(local, LIMITED):
                    key = row.get("trigger", {}).get("source", "")
                    if key.endswith(f"file-{i:02d}.csv") and (row.get("waiting_for") or row.get("attempt")):
                        return row
                return None

            row = local.wait_for(arrived, 60, interval=0.2, what=f"run {i} to hold or wait for a slot")
            created.append(row["run_id"])
        final = wait_final(local, LIMITED, LIMITED_RUNS, 240, time.time())
    finally:
        sampler.done.set()
        sampler.join()
    rows = {r["run_id"]: r for r in rows_of(local, LIMITED)}
    assert sorted(final) == sorted(created) == sorted(rows)
    assert Counter(r["status"] for r in rows.values()) == {"SUCCEEDED": LIMITED_RUNS}
    assert sampler.most == LIMIT
    assert set(sampler.first_seen) == set(created)  # every run held a slot, seen by the sampler
    granted = [sampler.first_seen[run_id] for run_id in created]
    assert granted == sorted(granted), f"slots granted out of creation order: {granted}"
    assert [rows[r]["created_at"] for r in created] == sorted(rows[r]["created_at"] for r in created)

    def holders() -> dict[str, Any]:
        slot = local.client("dynamodb").get_item(
            TableName=local.output("RunTableName"), Key={"pk": {"S": f"SLOT#{LIMITED}"}}, ConsistentRead=True
        )["Item"]
        return slot.get("holders", {}).get("M", {})

    # Every slot given back: the stream consumer releases a run's slot after its row became final.
    local.wait_for(lambda: holders() == {}, 60, interval=0.5, what="the last runs' slots to be released")
    print(f"\nslots: {sampler.samples} samples, at most {sampler.most} holders, first seen at {granted}")


def test_a_burst_under_a_low_submit_quota_loses_nothing_and_keeps_to_the_rate(local: LocalStack) -> None:
    before, started = point(local), time.time()
    dropped = drop(local, f"e2e/{BURST}/", BURST_FILES)
    became_final = wait_final(local, BURST, BURST_FILES, 300, started)
    after = point(local)
    new = after["submits"][len(before["submits"]) :]
    submits = [(t, name) for t, operation, name in new if operation == "SubmitJob"]
    rows = rows_of(local, BURST)
    figures = Burst(rows, became_final, dropped, submits, BURST_FILES, SUBMIT_RATE, started).figures()
    print(f"\nburst figures: {figures}")
    assert figures["runs_created"] == BURST_FILES
    assert figures["lost"] == 0
    assert figures["final_by_status"] == {"SUCCEEDED": BURST_FILES}
    assert figures["failed_by_throttling"] == 0
    assert figures["submitted_twice"] == 0
    ids = {r["run_id"] for r in rows}
    ours = [t for t, name in submits if name.rsplit("-", 1)[0] in ids]
    assert len(ours) == BURST_FILES  # one accepted submit per run: each succeeded on its first attempt
    # The submitters' shared schedule (QUOTA#SubmitJob#<slot>): a slot per accepted submit at least
    # (a slot given up by a late write stays unused), each 1.1 s / rate after the last.
    slots = quota_slots(local, "SubmitJob", started)
    assert len(slots) >= BURST_FILES
    # Seen from outside (the meter's clock, any 1-second window), the submits stay within the
    # quota, so AWS's token bucket (rate, size = rate) refuses none: the local Batch counts and
    # answers TooManyRequestsException as AWS does, the SDK's retries put it in the call count.
    refused = after["calls"].get("batch:SubmitJob", 0) - before["calls"].get("batch:SubmitJob", 0) - len(submits)
    assert figures["max_submits_in_one_second"] == max_rate(ours) <= SUBMIT_RATE
    assert refused == 0
    print(f"submits: {len(ours)} accepted, {refused} refused as throttled, slots taken {len(slots)}")


def quota_slots(local: LocalStack, api: str, since: float) -> list[int]:
    """The slots of `api`'s shared schedule taken since `since` (jobline.quota)."""
    pages = (
        local.client("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=local.output("RunTableName"),
            FilterExpression="begins_with(pk, :p)",
            ExpressionAttributeValues={":p": {"S": f"QUOTA#{api}#"}},
            ConsistentRead=True,
        )
    )
    slots = (int(item["pk"]["S"].rsplit("#", 1)[1]) for page in pages for item in page["Items"])
    schedule = quota.Schedule(SUBMIT_RATE)
    return sorted(slot for slot in slots if schedule.start(slot) >= since)
