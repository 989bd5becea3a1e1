"""The contracts as the integration tests run them: installed on moto for every test, with
jobline's own known violations of AWS's models let through - and only those - so that a new
violation fails its test at once. tests/local/test_contract_jobline_requests.py holds
KNOWN_JOBLINE_VIOLATIONS to exactly what the integration tests find: remove each entry as its
defect is fixed in jobline (the test fails while a fixed one is still listed)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from jobline_local import contracts
from jobline_local.contracts import throttling

# (service, operation, member, rule) of every request jobline sends that AWS's model refuses.
KNOWN_JOBLINE_VIOLATIONS: frozenset[tuple[str, str, str, str]] = frozenset()
RECORD_ENV = "JOBLINE_CONTRACTS_RECORD"  # a file: each test appends what the contracts saw


@pytest.fixture(autouse=True)
def aws_contracts() -> Iterator[contracts.Record]:
    contracts.install()
    throttling.configure(None)
    contracts.record.clear()
    contracts.record.tolerated = KNOWN_JOBLINE_VIOLATIONS
    yield contracts.record
    contracts.record.tolerated = frozenset()
    if path := os.environ.get(RECORD_ENV):
        with open(path, "a", encoding="utf-8") as out:
            out.write(
                json.dumps(
                    {
                        "validated": sorted(contracts.record.validated),
                        "violations": sorted({v.key for v in contracts.record.violations}),
                        "unvalidated": sorted(contracts.record.unvalidated),
                    }
                )
                + "\n"
            )
