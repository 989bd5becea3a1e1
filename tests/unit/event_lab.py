"""A run table on moto where tests deliver observations as the state change handler applies them
(jobline.state_changes: the conditional writes, the tickets, the answers), so every rule is
checked in DynamoDB's own expressions, not in a model of them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from jobline.backends import AttemptDetail, Observation
from jobline.dal import RunTable, _to_item
from jobline.state_changes import Outcome, apply_detail, apply_observation
from jobline.status import RANK_PENDING
from tests.aws_resources import REGION, create_run_table

Seen = Observation | AttemptDetail


def new_row(**fields: Any) -> dict[str, Any]:
    """A run row as its trigger creates it (jobline.runs.new_row's status fields)."""
    return {
        "run_id": "word-count-0123456789abcdef0123",
        "record_type": "RUN",
        "job": "word-count",
        "backend": "batch",
        "status": "PENDING",
        "reason": "Recently submitted",
        "status_rank": RANK_PENDING,
        "status_time": "2026-11-21T00:00:00.000Z",
        "attempt": 0,
        "attempts": {},
        "created_at": "2026-11-21T00:00:00.000Z",
        "updated_at": "2026-11-21T00:00:00.000Z",
        **fields,
    }


def ticket(run_id: str, attempt: int, max_attempts: int, retry_on_timeout: bool = False, **fields: Any) -> dict:
    """An attempt's ticket as the submitter writes it (PHASE3 "Claim")."""
    return {
        "pk": f"ATTEMPT#{run_id}#{attempt}",
        "retry_count": attempt - 1,
        "max_attempts": max_attempts,
        "retry_on_timeout": retry_on_timeout,
        "backend": "batch",
        **fields,
    }


def stored(row: Any) -> Any:
    """A row as tests compare it: its status and attempts, not its key, id or write time."""
    if isinstance(row, dict):
        return {k: stored(v) for k, v in row.items() if k not in ("pk", "run_id", "updated_at")}
    return row


class Lab:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.table = RunTable(client, "runs")
        self._runs = 0

    def new_run(
        self, max_attempts: int = 3, retry_on_timeout: bool = False, *, tickets: bool = True, **fields: Any
    ) -> str:
        """A fresh PENDING run and (unless told) the tickets of every attempt it may make."""
        self._runs += 1
        run_id = f"word-count-{self._runs:020x}"
        self.table.create_run(new_row(run_id=run_id, **fields))
        for attempt in range(1, max_attempts + 1) if tickets else ():
            self.put_ticket(ticket(run_id, attempt, max_attempts, retry_on_timeout))
        return run_id

    def put_ticket(self, item: dict[str, Any]) -> None:
        self.client.put_item(TableName="runs", Item=_to_item(item))

    def deliver(self, run_id: str, seen: Seen, sfn: Any = None) -> Outcome:
        seen = dataclasses.replace(seen, run_id=run_id)
        if isinstance(seen, AttemptDetail):
            return apply_detail(seen, self.table)
        return apply_observation(seen, self.table, sfn)

    def deliver_all(self, run_id: str, seen: Iterable[Seen], sfn: Any = None) -> dict[str, Any]:
        for one in seen:
            self.deliver(run_id, one, sfn)
        return self.row(run_id)

    def row(self, run_id: str) -> dict[str, Any]:
        row = self.table.get_run(run_id)
        assert row is not None
        return row


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_run_table(client, "runs")
        yield Lab(client)
