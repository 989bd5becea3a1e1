"""The outcome every fault case must reach, and the tally printed at the end of the run.

A logical trigger ends as exactly one run with its job's real outcome (one row, one execution that
ended, one backend job per attempt, the first delivery's trigger event in the row, the execution
and the S3 copy), or as a visible rejection (a DLQ record). Anything else is a problem, named."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tests.faults.injection import Injector
from tests.faults.redelivery import Ledger
from tests.faults.stack import Stack


@dataclass
class Tally:
    """Per handler: cases tried, cases whose fault fired, cases that healed, and what failed."""

    tried: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    fired: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    healed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    redeliveries: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def record(self, handler: str, case: str, injector: Injector, ledger: Ledger, problems: list[str]) -> None:
        self.tried[handler] += 1
        self.redeliveries[handler] += max(0, ledger.invocations - 1)
        if injector.fired:
            self.fired[handler] += 1
            if not problems:
                self.healed[handler] += 1
        for problem in problems:
            self.problems[handler].append(f"{case}: {problem}")

    def lines(self) -> list[str]:
        lines = [f"{'handler':<16}{'tried':>7}{'fired':>7}{'healed':>8}{'failed':>8}{'redelivered':>13}"]
        for handler in sorted(self.tried):
            failed = len({p.split(": ", 1)[0] for p in self.problems[handler]})
            lines.append(
                f"{handler:<16}{self.tried[handler]:>7}{self.fired[handler]:>7}{self.healed[handler]:>8}"
                f"{failed:>8}{self.redeliveries[handler]:>13}"
            )
        totals = [sum(d.values()) for d in (self.tried, self.fired, self.healed)]
        kinds = defaultdict(int)
        for problems in self.problems.values():
            for problem in problems:
                kinds[problem.split(": ", 1)[1].split(":", 1)[0]] += 1
        lines.append(f"total: {totals[0]} tried, {totals[1]} with a fault fired, {totals[2]} healed")
        lines.append(
            "lost runs {}, duplicate executions {}, replaced trigger events {}, unhandled exceptions {}".format(
                *(kinds.get(k, 0) for k in ("lost run", "duplicate execution", "replaced trigger event", "unhandled"))
            )
        )
        lines.extend(f"  {kind}: {n}" for kind, n in sorted(kinds.items()))
        return lines


TALLY = Tally()


def _stored_event(stack: Stack, value: str) -> Any:
    if value.startswith("s3://"):
        bucket, key = value.removeprefix("s3://").split("/", 1)
        return json.loads(stack.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    return json.loads(value)


def run_problems(
    stack: Stack, run_id: str, first_event: Any, ledger: Ledger, expected_status: str = "SUCCEEDED"
) -> list[str]:
    """What is wrong with how one logical trigger ended (empty: nothing)."""
    row = stack.deps.table.get_run(run_id)
    if row is None:
        return [] if ledger.parked else [f"lost run: {run_id} has no row and no DLQ record"]
    # A handler's own defect met while the stack's event sources carried the run (a delivery they
    # gave up on is visible, in its DLQ; what it leaves undone shows in the run's outcome).
    problems = unhandled(stack.background)
    execution = stack.execution(run_id)
    if execution is None:
        return [f"lost run: row {row['status']} ({row['reason']}) without an execution"]
    if execution["status"] == "RUNNING":
        problems.append(f"lost run: execution still RUNNING, row {row['status']} ({row['reason']})")
    if row["status"] != expected_status:
        problems.append(
            f"wrong outcome: row {row['status']} ({row['reason']}), the job's outcome was {expected_status}"
        )
    if row["backend"] == "batch" and len(stack.compute.submitted(run_id)) > max(1, int(row.get("attempt") or 0)):
        problems.append(
            f"duplicate execution: Batch jobs {stack.compute.submitted(run_id)} for {row['attempt']} attempt(s)"
        )
    data = stack.deps.table.get_run_data(run_id) or {}
    stored = data.get("event") or data.get("event_s3_uri")
    if stored is None or _stored_event(stack, stored) != first_event:
        problems.append("replaced trigger event: the run data's trigger event is not the first delivery's")
    environment = stack.compute.environments.get(run_id)
    seen = environment and (environment.get("JOBLINE_TRIGGER_EVENT") or environment.get("JOBLINE_TRIGGER_EVENT_S3_URI"))
    if environment is not None and (not seen or _stored_event(stack, seen) != first_event):
        problems.append("replaced trigger event: the job's trigger event is not the first delivery's")
    return problems


def unhandled(ledger: Ledger) -> list[str]:
    return [f"unhandled: {error}" for error in ledger.unhandled]
