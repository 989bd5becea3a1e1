"""Concurrent state change events for one row, on moto: they converge to the row of the ordered
sequence, and no exception escapes; a row contended past the caller's time is RowContended."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from moto.dynamodb.models import DynamoDBBackend

from jobline.dal import RunTable
from jobline.errors import RowContended
from jobline.state_changes import Effect, apply_state_change, parse_event
from tests.unit.backends.conftest import table  # noqa: F401  (the run table fixture, on moto)
from tests.unit.test_status import new_row
from tests.unit.test_status_ties import RUN_ID, apply_all, batch, observe

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


def stored(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the table keeps it: no None values (not written), none of the table's own fields."""
    if isinstance(row, dict):
        return {k: stored(v) for k, v in row.items() if v is not None and k not in ("pk", "version", "updated_at")}
    return row


def test_many_concurrent_events_for_one_row_converge_to_the_ordered_row(
    table: RunTable,  # noqa: F811
    atomic_items: dict[str, int],
) -> None:
    table.create_run({**new_row(max_attempts=2), "run_id": RUN_ID})
    events = [batch(1, s) for s in [*STATUSES, "FAILED"]] + [batch(2, s) for s in [*STATUSES, "SUCCEEDED"]]
    delivered = events * 4
    random.Random(10).shuffle(delivered)

    def deliver(event: dict[str, Any]) -> Effect:
        return apply_state_change(parse_event(event), table, None, None, time_left=lambda: 60.0).effect

    with ThreadPoolExecutor(max_workers=16) as pool:
        effects = list(pool.map(deliver, delivered))  # re-raises any exception a delivery raised

    assert atomic_items["conflicts"] > 0  # the deliveries did race for the row
    assert set(effects) <= {Effect.APPLIED, Effect.UNCHANGED}
    expected = apply_all({**new_row(max_attempts=2), "run_id": RUN_ID}, [observe(e, None) for e in events])
    assert stored(table.get_run(RUN_ID) or {}) == stored(expected)
    assert (expected["status"], expected["attempt"]) == ("SUCCEEDED", 2)


def test_a_row_contended_past_the_callers_time_is_refused_unchanged(table: RunTable) -> None:  # noqa: F811
    table.create_run({**new_row(), "run_id": RUN_ID})
    rival = RunTable(table._client, "runs")  # another writer on the same table

    def change_while_a_rival_writes(row: dict[str, Any]) -> dict[str, Any]:
        rival.update_run(RUN_ID, lambda current: {**current, "reason": f"rival {current.get('version', 0)}"})
        return {**row, "reason": "mine"}

    with pytest.raises(RowContended, match="still contended after 1 concurrent updates"):
        table.update_run(RUN_ID, change_while_a_rival_writes, time_left=lambda: 0.0)
    assert (table.get_run(RUN_ID) or {})["reason"] == "rival 0"
