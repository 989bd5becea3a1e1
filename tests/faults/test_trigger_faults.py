"""Faults in the trigger handlers' AWS calls (through intake / RunStarter) and the API's start: for
each trigger kind, each call its first delivery makes, each fault kind, once or as an outage over
every delivery AWS makes. After the deliveries, one reconciler sweep (as its schedule would run);
then every logical trigger must have ended as one run with its job's outcome, or visibly rejected."""

from __future__ import annotations

from typing import Any

import pytest

from tests.faults.injection import KINDS, Injector, Rule
from tests.faults.outcome import TALLY, run_problems, unhandled
from tests.faults.redelivery import Ledger, deliver_async
from tests.faults.scenarios import TRIGGERS, LogicalTrigger
from tests.faults.stack import Stack

pytestmark = pytest.mark.faults
SCHEDULED_EVENT = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def sweep(ledger: Ledger, injector: Injector, stack: Stack) -> None:
    """The reconciler's next scheduled run (faults lifted: AWS has recovered by then)."""
    injector.lift()
    deliver_async(ledger, injector, stack.handlers["reconciler"].handler, SCHEDULED_EVENT)


def outcome(stack: Stack, injector: Injector, ledger: Ledger, trigger: LogicalTrigger) -> list[str]:
    if trigger.run_id is not None:
        stack.settle([trigger.run_id], injector)
    sweep(ledger, injector, stack)
    problems = unhandled(ledger)
    if trigger.run_id is None:
        if not ledger.parked and not stack.dlq_bodies():
            problems.append("lost run: a rejected trigger left no DLQ record")
        return problems
    stack.settle([trigger.run_id], injector)
    stack.dlq_bodies()  # this case's DLQ records, read and dropped
    return problems + run_problems(stack, trigger.run_id, trigger.event, ledger)


def deliver_all(stack: Stack, injector: Injector, ledger: Ledger, trigger: LogicalTrigger) -> None:
    for event in trigger.events:
        trigger.deliver(ledger, injector, stack, event)


def test_the_enumerated_calls_are_the_calls_each_handler_makes(stack: Stack, injector: Injector) -> None:
    for name, (build, calls) in TRIGGERS.items():
        injector.reset()
        trigger = build(stack)
        ledger = Ledger()
        deliver_all(stack, injector, ledger, trigger)
        assert injector.sequence() == calls, name
        assert ledger.failed_invocations == 0, name
        assert outcome(stack, injector, ledger, trigger) == [], name


CASES = [
    pytest.param(name, index, kind, outage, id=f"{name}-{calls[index][1]}-{kind}{'-outage' if outage else ''}")
    for name, (_, calls) in TRIGGERS.items()
    for index in range(len(calls))
    for kind in KINDS
    for outage in (False, True)
]


@pytest.mark.parametrize(("name", "index", "kind", "outage"), CASES)
def test_a_trigger_survives_a_fault_in_its_handlers_calls(
    stack: Stack, injector: Injector, name: str, index: int, kind: Any, outage: bool
) -> None:
    build, calls = TRIGGERS[name]
    service, operation = calls[index]
    nth = calls[: index + 1].count((service, operation))
    injector.rules.append(Rule(service, operation, nth, kind, outage=outage))
    trigger = build(stack)
    ledger = Ledger()
    deliver_all(stack, injector, ledger, trigger)
    problems = outcome(stack, injector, ledger, trigger)
    TALLY.record(
        trigger.handler, f"{name} {service}.{operation} {kind}{' outage' if outage else ''}", injector, ledger, problems
    )
    assert injector.fired, "the fault never fired"
    assert problems == []
