"""The fault suite's fixtures (one moto stack for the suite, a fresh injector per case) and the
tally of faults tried and healed, printed at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.faults.injection import Injector, installed
from tests.faults.outcome import TALLY
from tests.faults.redelivery import Ledger
from tests.faults.stack import (
    BATCH_JOB,
    Stack,
    stack,  # noqa: F401 - the session's moto stack
)


@pytest.fixture
def injector(stack: Stack) -> Iterator[Injector]:  # noqa: F811 - the fixture above
    """A fresh injector, and a fresh start for the case: the event sources' ledger, and the Batch
    job's slot item (a run an earlier case left holding a slot must not make this one wait)."""
    stack.background = Ledger()
    stack.client("dynamodb").delete_item(TableName="runs", Key={"pk": {"S": f"SLOT#{BATCH_JOB}"}})
    with installed(Injector()) as fresh:
        yield fresh


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY.tried:
        return
    terminalreporter.section("fault injection: tried and healed")
    for line in TALLY.lines():
        terminalreporter.write_line(line)
    for handler, problems in sorted(TALLY.problems.items()):
        for problem in problems[:40]:
            terminalreporter.write_line(f"  [{handler}] {problem}")
