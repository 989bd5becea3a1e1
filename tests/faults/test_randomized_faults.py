"""A seeded, bounded randomized run: logical triggers of every kind, each delivered more than once
(for bus events, as other events with the same idempotency key), all deliveries shuffled together,
with random faults on random calls of random operations. Then one reconciler sweep, and every
logical trigger must have ended as one run keeping its creator's trigger event (the delivery whose
row write reached AWS first), or as a visible rejection."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from tests.faults.injection import KINDS, Injector, Rule
from tests.faults.outcome import TALLY, run_problems, unhandled
from tests.faults.redelivery import Ledger
from tests.faults.scenarios import TRIGGERS, LogicalTrigger, bus_event
from tests.faults.stack import Stack
from tests.faults.test_trigger_faults import sweep

pytestmark = pytest.mark.faults
SEED = 20261201
ROUNDS = 4  # each ~5 s on 2 cores
TRIGGERS_PER_ROUND = 8
FAULTS_PER_ROUND = 3
OPERATIONS = sorted({call for _, calls in TRIGGERS.values() for call in calls})


def creators_event(injector: Injector, run_id: str) -> Any | None:
    """The trigger event of the delivery that wrote the run's data: the first conditional PutItem
    of its RUNDATA# key that reached AWS (its inline event, or the first body put at its S3 reference)."""
    for call in injector.calls:
        if (call.service, call.operation) != ("dynamodb", "PutItem") or not call.reached_aws:
            continue
        item = call.params["Item"]
        if item["pk"]["S"] != f"RUNDATA#{run_id}" or "ConditionExpression" not in call.params:
            continue
        if "event" in item:
            return json.loads(item["event"]["S"])
        key = item["event_s3_uri"]["S"].split("/", 3)[3]
        (body, *_) = [put["Body"] for put in injector.made("s3", "PutObject") if put["Key"] == key]
        return json.loads(body)
    return None


@pytest.mark.parametrize("round_number", range(ROUNDS))
def test_shuffled_redeliveries_under_random_faults(stack: Stack, injector: Injector, round_number: int) -> None:
    rng = random.Random(SEED + round_number)
    kinds = [*TRIGGERS, "bus-large-duplicates"]
    logical: list[LogicalTrigger] = []
    for _ in range(TRIGGERS_PER_ROUND):
        kind = rng.choice(kinds)
        if kind == "bus-large-duplicates":
            trigger = bus_event(stack, duplicates=rng.randint(1, 2), size=7000)
        else:
            trigger = TRIGGERS[kind][0](stack)
            trigger.events = trigger.events * rng.randint(1, 3)
        logical.append(trigger)
    deliveries = [(trigger, event) for trigger in logical for event in trigger.events]
    rng.shuffle(deliveries)
    for _ in range(FAULTS_PER_ROUND):
        service, operation = rng.choice(OPERATIONS)
        injector.rules.append(Rule(service, operation, rng.randint(1, 6), rng.choice(KINDS), outage=rng.random() < 0.2))
    rules = ", ".join(f"{r.service}.{r.operation}#{r.nth}{'+' if r.outage else ''} {r.kind}" for r in injector.rules)
    ledger = Ledger()
    for trigger, event in deliveries:
        trigger.deliver(ledger, injector, stack, event)
    run_ids = [t.run_id for t in logical if t.run_id]
    stack.settle(run_ids, injector)
    sweep(ledger, injector, stack)
    stack.settle(run_ids, injector)
    problems = unhandled(ledger)
    for trigger in logical:
        if trigger.run_id is None:
            continue
        expected = creators_event(injector, trigger.run_id)
        problems += run_problems(stack, trigger.run_id, expected if expected is not None else trigger.event, ledger)
    stack.dlq_bodies()
    TALLY.record(
        "randomized", f"round {round_number} ({len(deliveries)} deliveries; {rules})", injector, ledger, problems
    )
    assert problems == []
