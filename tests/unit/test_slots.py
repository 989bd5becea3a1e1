"""Concurrency slots, end to end through the run table's stream on moto: the records the
template's filter lets through reach jobline.slots (RunStreamFunction's code), which releases and
hands on slots in creation order, grants a waiter at once when a slot is free, drops waiters
whose executions no longer wait, and the reconciler's sweep heals a lost hand-off. The answers
to task tokens go through botocore's Stubber (each request checked against the Step Functions
model)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from jobline import deps as deps_module
from jobline import settings as settings_module
from jobline.dal import RunTable, waiting_for
from jobline.slots import Slots, process_stream
from jobline.status import Reason, RunStatus, end_write
from jobline_local.adaptations.delivery import pattern_matches
from tests.aws_resources import REGION, TEST_ENVIRONMENT
from tests.cfn import resource
from tests.unit.conftest import LambdaContext, load_handler
from tests.unit.event_lab import new_row

JOB = "word-count"
FILTERS = [
    json.loads(f["Pattern"])
    for f in resource("RunStreamFunctionRunTableStream")["Properties"]["FilterCriteria"]["Filters"]
]


class Stack:
    """A streamed run table (the template's), its stream read as Lambda reads it, the slots."""

    def __init__(self, session: Any) -> None:
        ddb = session.client("dynamodb")
        props = resource("RunTable")["Properties"]
        self.stream = ddb.create_table(
            TableName="runs",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=props["AttributeDefinitions"],
            KeySchema=props["KeySchema"],
            GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
            StreamSpecification={
                "StreamEnabled": True,
                "StreamViewType": props["StreamSpecification"]["StreamViewType"],
            },
        )["TableDescription"]["LatestStreamArn"]
        self.ddb, self.streams = ddb, session.client("dynamodbstreams")
        self.table = RunTable(ddb, "runs")
        self.sfn = Stubber(session.client("stepfunctions"))
        self.slots = Slots(self.table, self.sfn.client)
        self._seen = 0
        self._runs = 0

    def run(self, holds: bool = False, limit: int = 2) -> str:
        self._runs += 1
        run_id = f"{JOB}-{self._runs:020x}"
        created = f"2026-11-21T00:00:{self._runs:02d}.000Z"
        self.table.create_run(new_row(run_id=run_id, created_at=created, slot_job=JOB, slot_max=limit))
        if holds:
            assert self.table.take_slot(JOB, run_id, limit, created) == "taken"  # AcquireSlot
        return run_id

    def wait(self, run_id: str) -> None:
        """WaitForSlot: the execution's token on its own row (condition: not ended)."""
        self.ddb.update_item(
            TableName="runs",
            Key={"pk": {"S": f"RUN#{run_id}"}},
            UpdateExpression="SET slot_token = :t, waiting_for = :w, reason = :r",
            ConditionExpression="status_rank < :terminal",
            ExpressionAttributeValues={
                ":t": {"S": token(run_id)},
                ":w": {"S": waiting_for(JOB)},
                ":r": {"S": Reason.WAITING_FOR_SLOT.value},
                ":terminal": {"N": "30"},
            },
        )

    def end(self, run_id: str, status: RunStatus = RunStatus.SUCCEEDED) -> None:
        applied, _ = self.table.write_run(run_id, end_write(status, "Completed", "2026-11-21T01:00:00.000Z"))
        assert applied

    def records(self) -> list[dict[str, Any]]:
        """The stream's records since the last call, as Lambda hands them over."""
        shard = self.streams.describe_stream(StreamArn=self.stream)["StreamDescription"]["Shards"][0]
        iterator = self.streams.get_shard_iterator(
            StreamArn=self.stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = self.streams.get_records(ShardIterator=iterator)["Records"]
        fresh, self._seen = records[self._seen :], len(records)
        for record in fresh:
            record["dynamodb"]["ApproximateCreationDateTime"] = record["dynamodb"][
                "ApproximateCreationDateTime"
            ].timestamp()
            record["eventSourceARN"] = self.stream
        return fresh

    def deliver(self, *, lose: bool = False) -> list[dict[str, Any]]:
        """The new records the mapping's filter lets through, handed to the slots (or lost)."""
        passed = [r for r in self.records() if any(pattern_matches(f, r) for f in FILTERS)]
        if not lose:
            assert process_stream({"Records": passed}, self.slots) == {"batchItemFailures": []}
        return passed

    def expect_wake(self, run_id: str, error: str | None = None) -> None:
        params = {"taskToken": token(run_id), "output": json.dumps({"slot": JOB, "run_id": run_id})}
        if error:
            self.sfn.add_client_error("send_task_success", service_error_code=error, expected_params=params)
        else:
            self.sfn.add_response("send_task_success", {}, params)

    def holders(self) -> list[str]:
        return sorted(self.table.slot_holders(JOB))

    def waiting(self, run_id: str) -> bool:
        return "waiting_for" in (self.table.get_run(run_id) or {})


def token(run_id: str) -> str:
    return f"slot-token-{run_id}"


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    for key, value in TEST_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        stack = Stack(boto3.session.Session(region_name=REGION))
        with stack.sfn:
            yield stack
            stack.sfn.assert_no_pending_responses()


def test_slots_are_handed_on_in_creation_order_and_freed_when_nobody_waits(stack: Stack) -> None:
    a, b = stack.run(holds=True), stack.run(holds=True)
    waiters = [stack.run() for _ in range(3)]
    for waiter in reversed(waiters):  # registered newest first: creation order still decides
        stack.wait(waiter)
    stack.deliver()  # registrations while full: nothing changes
    assert stack.holders() == sorted([a, b])

    stack.expect_wake(waiters[0])
    stack.end(a)
    stack.deliver()
    assert stack.holders() == sorted([b, waiters[0]])
    row = stack.table.get_run(waiters[0])
    assert (row["reason"], "slot_token" in row, "waiting_for" in row) == ("Concurrency slot granted", False, False)

    stack.expect_wake(waiters[1])
    stack.end(b, RunStatus.FAILED)
    stack.deliver()
    assert stack.holders() == sorted(waiters[:2])

    stack.expect_wake(waiters[2])
    stack.end(waiters[0])
    stack.deliver()
    stack.end(waiters[1])  # nobody waits any more: its slot is freed
    stack.deliver()
    assert stack.holders() == [waiters[2]]
    assert not any(stack.waiting(w) for w in waiters)


def test_a_waiter_registering_while_a_slot_is_free_gets_it_at_once(stack: Stack) -> None:
    stack.run(holds=True)
    late = stack.run()
    stack.wait(late)  # its AcquireSlot failed, and a slot freed before it registered
    stack.expect_wake(late)
    assert len(stack.deliver()) == 1
    assert late in stack.holders()


def full_with_two_waiting(stack: Stack) -> tuple[str, str, str, str]:
    """Two runs holding both slots, two waiting (registered, their records delivered)."""
    a, b = stack.run(holds=True), stack.run(holds=True)
    w1, w2 = stack.run(), stack.run()
    stack.wait(w1)
    stack.wait(w2)
    stack.deliver()
    return a, b, w1, w2


def test_a_duplicate_record_of_an_ended_run_hands_on_nothing_twice(stack: Stack) -> None:
    a, b, w1, w2 = full_with_two_waiting(stack)
    stack.expect_wake(w1)
    stack.end(a)
    (ended,) = stack.deliver()
    assert process_stream({"Records": [ended]}, stack.slots) == {"batchItemFailures": []}  # delivered again
    assert stack.holders() == sorted([b, w1])
    assert stack.waiting(w2)


def test_a_waiter_whose_run_ended_unseen_gives_the_slot_it_was_handed_to_the_next(stack: Stack) -> None:
    a = stack.run(holds=True, limit=1)
    gone, next_one = stack.run(limit=1), stack.run(limit=1)
    stack.wait(gone)
    stack.wait(next_one)
    stack.deliver()
    stack.end(gone, RunStatus.STOPPED)
    stack.deliver(lose=True)  # its end's record lost: it is still listed as waiting
    stack.expect_wake(gone, error="InvalidToken")  # its execution was stopped
    stack.expect_wake(next_one)
    stack.end(a)
    stack.deliver()
    assert stack.holders() == [next_one]
    assert not stack.waiting(gone)


def test_a_live_waiter_whose_token_is_refused_keeps_its_slot_until_its_run_ends(stack: Stack) -> None:
    a = stack.run(holds=True, limit=1)
    timed_out, next_one = stack.run(limit=1), stack.run(limit=1)
    stack.wait(timed_out)
    stack.wait(next_one)
    stack.deliver()
    stack.expect_wake(timed_out, error="TaskTimedOut")  # its execution's guard fired; its row ends next
    stack.end(a)
    stack.deliver()
    assert stack.holders() == [timed_out]
    stack.expect_wake(next_one)
    stack.end(timed_out, RunStatus.FAILED)  # the execution's RecordFailure
    stack.deliver()
    assert stack.holders() == [next_one]
    assert not stack.waiting(timed_out)


def test_two_releases_listing_the_same_waiter_give_it_one_slot_and_serve_the_next(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, w1, w2 = full_with_two_waiting(stack)
    stale = stack.table.slot_waiters(JOB, 10)  # what a concurrent release on another shard listed
    stack.expect_wake(w1)
    stack.end(a)
    stack.deliver()
    monkeypatch.setattr(stack.table, "slot_waiters", lambda job, limit: stale)
    stack.expect_wake(w1, error="InvalidToken")  # answered again, refused: it is live, it keeps its slot
    stack.expect_wake(w2)
    stack.end(b)
    stack.deliver()  # w1 holds already: not handed b's slot; w2 gets it
    assert stack.holders() == sorted([w1, w2])


def test_a_run_stopped_while_waiting_leaves_the_queue_and_frees_nothing(stack: Stack) -> None:
    a = stack.run(holds=True, limit=1)
    stopped = stack.run(limit=1)
    stack.wait(stopped)
    stack.deliver()
    stack.end(stopped, RunStatus.STOPPED)
    stack.deliver()
    assert not stack.waiting(stopped)
    assert stack.holders() == [a]


def test_a_stale_index_entry_of_a_served_waiter_keeps_its_slot(stack: Stack) -> None:
    a = stack.run(holds=True, limit=2)
    served = stack.run(limit=2)
    assert stack.table.take_slot(JOB, served, 2, "t") == "taken"  # served and woken: its execution went on
    # The index still lists it with its old token (eventually consistent): answering again is refused.
    stack.expect_wake(served, error="InvalidToken")
    assert stack.slots._wake(JOB, {"run_id": served, "slot_token": token(served)}) == []
    assert stack.holders() == sorted([a, served])


def test_only_slot_records_pass_the_mappings_filter(stack: Stack) -> None:
    running = stack.run(holds=True)
    assert stack.table.create_run(new_row(run_id=f"{JOB}-{'f' * 20}")) is None  # written; no slot_job
    stack.table.write_run(running, end_write(RunStatus.SUCCEEDED, "Completed", "t"))  # ends: passes
    stack.table.write_run(running, end_write(RunStatus.FAILED, "late", "t"))  # refused: no record
    stack.ddb.update_item(  # a gap filled on the ended row: fails the filter
        TableName="runs",
        Key={"pk": {"S": f"RUN#{running}"}},
        UpdateExpression="SET note = :n",
        ExpressionAttributeValues={":n": {"S": "gap"}},
    )
    stack.end(f"{JOB}-{'f' * 20}")  # no slot_job: fails the filter
    passed = stack.deliver(lose=True)
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in passed] == [f"RUN#{running}"]


def test_the_reconcilers_sweep_heals_a_lost_hand_off(stack: Stack) -> None:
    a, b, w1, w2 = full_with_two_waiting(stack)
    stack.end(a)
    stack.end(b)
    assert len(stack.deliver(lose=True)) == 2  # both records lost (their retries ran out)
    stack.expect_wake(w1)
    stack.expect_wake(w2)
    changes = stack.slots.sweep(JOB)
    assert changes[:2] == [f"{a}'s slot released (the run had ended)", f"{b}'s slot released (the run had ended)"]
    assert stack.holders() == sorted([w1, w2])
    # A holder whose wake-up was lost (the slot is its, the row still waits) is woken again.
    stack.ddb.update_item(
        TableName="runs",
        Key={"pk": {"S": f"RUN#{w1}"}},
        UpdateExpression="SET slot_token = :t, waiting_for = :w",
        ExpressionAttributeValues={":t": {"S": token(w1)}, ":w": {"S": waiting_for(JOB)}},
    )
    stack.expect_wake(w1)
    assert stack.slots.sweep(JOB) == [f"{w1} woken"]


def test_the_run_stream_handler_reports_a_failed_record_for_retry(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = stack.run(holds=True, limit=1)
    waiter = stack.run(limit=1)
    stack.wait(waiter)
    stack.deliver()
    stack.end(a)
    stack.sfn.add_client_error("send_task_success", service_error_code="ThrottlingException")
    passed = [r for r in stack.records() if any(pattern_matches(f, r) for f in FILTERS)]
    failed = process_stream({"Records": passed}, stack.slots)
    assert failed == {"batchItemFailures": [{"itemIdentifier": passed[0]["dynamodb"]["SequenceNumber"]}]}
    stack.expect_wake(waiter)  # the retry of the batch from that record
    assert process_stream({"Records": passed}, stack.slots) == {"batchItemFailures": []}
    assert stack.holders() == [waiter]


def test_the_run_stream_function_serves_a_waiter_with_the_stacks_clients(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = "arn:aws:states:us-east-1:123456789012:stateMachine:jobline-run-"
    settings = {"RUN_TABLE_NAME": "runs", "STATE_MACHINE_PREFIX": prefix}
    for key, value in {**settings, "EVENT_DLQ_URL": "https://dlq", "RUN_DATA_BUCKET": "data"}.items():
        monkeypatch.setenv(key, value)
    settings_module.get_settings.cache_clear()
    deps_module.get_deps.cache_clear()
    waiter = stack.run()
    stack.wait(waiter)
    passed = [r for r in stack.records() if any(pattern_matches(f, r) for f in FILTERS)]
    # A slot is free: the waiter takes it and is woken (in-process moto accepts any task token).
    assert load_handler("run_stream").handler({"Records": passed}, LambdaContext()) == {"batchItemFailures": []}
    assert stack.holders() == [waiter]
    assert (stack.table.get_run(waiter) or {})["reason"] == Reason.SLOT_GRANTED
    settings_module.get_settings.cache_clear()
    deps_module.get_deps.cache_clear()
