"""Concurrent state change events for one row, on moto: they converge to the row of the ordered
sequence, and no exception escapes; a write whose plan never holds ends, as RowContended."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from moto.dynamodb.models import DynamoDBBackend

from jobline.errors import RowContended
from jobline.state_changes import WRITE_ROUNDS, Effect, apply_state_change, parse_event, write_planned
from jobline.status import RowWrite
from tests.unit.event_lab import Lab, lab, stored  # noqa: F401  (the lab fixture)
from tests.unit.test_status_ties import batch, observe

STATUSES = ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"]


@pytest.fixture
def atomic_items(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """DynamoDB applies a conditional write atomically, item by item
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithItems.html#WorkingWithItems.ConditionalUpdate);
    moto's in-process backend checks and writes without a lock, so threads could both win. One
    lock around its item calls gives moto DynamoDB's guarantee; lost races are counted."""
    lock = threading.Lock()
    counts = {"conflicts": 0}
    for name in ("get_item", "put_item", "update_item"):
        original = getattr(DynamoDBBackend, name)

        def atomic(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with lock:
                try:
                    return __original(self, *args, **kwargs)
                except Exception as error:
                    if type(error).__name__ == "ConditionalCheckFailed":
                        counts["conflicts"] += 1
                    raise

        monkeypatch.setattr(DynamoDBBackend, name, atomic)
    return counts


def test_many_concurrent_events_for_one_row_converge_to_the_ordered_row(
    lab: Lab,  # noqa: F811
    atomic_items: dict[str, int],
) -> None:
    events = [batch(1, s) for s in [*STATUSES, "FAILED"]] + [batch(2, s) for s in [*STATUSES, "SUCCEEDED"]]
    run = lab.new_run(max_attempts=2)
    for event in events:
        event["detail"]["tags"]["jobline:run-id"] = run
    delivered = events * 3
    random.Random(10).shuffle(delivered)

    def deliver(event: dict[str, Any]) -> Effect:
        return apply_state_change(parse_event(event), lab.table, None, None).effect

    with ThreadPoolExecutor(max_workers=8) as pool:
        effects = list(pool.map(deliver, delivered))  # re-raises any exception a delivery raised

    assert atomic_items["conflicts"] > 0  # the deliveries did race for the row
    assert set(effects) == {Effect.APPLIED, Effect.UNCHANGED}
    expected = lab.deliver_all(lab.new_run(max_attempts=2), [observe(e, None) for e in events])
    assert stored(lab.row(run)) == stored(expected)
    assert (expected["status"], expected["attempt"]) == ("SUCCEEDED", 2)


def test_a_write_whose_plan_never_holds_gives_up_after_its_rounds(lab: Lab) -> None:  # noqa: F811
    run = lab.new_run()
    plans: list[Any] = []

    def never_holds(row: dict[str, Any] | None) -> RowWrite:
        plans.append(row)
        write = RowWrite()
        write.conditions.append(f"{write.name('status_rank')} > {write.value('never', 99)}")
        write.set(write.name("reason"), "never written", "reason")
        return write

    with pytest.raises(RowContended, match=f"changed by {WRITE_ROUNDS} concurrent writers in a row"):
        write_planned(lab.table, run, never_holds)
    assert len(plans) == WRITE_ROUNDS + 1
    assert plans[0] is None
    assert lab.row(run)["reason"] == "Recently submitted"
    assert write_planned(lab.table, "word-count-ffffffffffffffffffff", never_holds) is None  # no such run
