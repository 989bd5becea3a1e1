"""Faults in the AWS calls of a run's execution and of the submitter that carries its attempt, on
moto's engine running the generated per-policy run machine: each call a limited Batch run's
execution makes (its slot taken, its attempt sent to the submit queue), each fault Step Functions
can meet (a throttle, a 5xx, a lost response; the service itself does not crash); then each call
the submitter makes for the attempt, each fault a Lambda can meet (a crash too), redelivered by the
real submit queue. The run must still end with its job's real outcome, with one Batch job per
attempt and its concurrency slot released."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from jobline import triggers
from jobline.runs import run_execution_arn
from tests.faults.injection import ENGINE_KINDS, KINDS, OUTAGE_KINDS, Injector, Rule
from tests.faults.outcome import TALLY, run_problems, unhandled
from tests.faults.redelivery import Ledger
from tests.faults.scenarios import s3_drop
from tests.faults.stack import BATCH_JOB, REFUSED_JOB, SLOT_LIMIT, Stack
from tests.faults.test_trigger_faults import sweep

pytestmark = pytest.mark.faults
# The Task states' calls of a one-attempt Batch run whose job's slot item is new, in order:
# AcquireSlot (refused: no holders map yet), OpenSlot, AcquireOpenedSlot, Attempt (the attempt
# sent to the submit queue; the execution then waits for its token). RecordFailure runs only on
# a failure path, WaitForSlot only when the slots are full.
TASK_CALLS = [
    ("AcquireSlot", "dynamodb", "UpdateItem", 1),
    ("OpenSlot", "dynamodb", "UpdateItem", 2),
    ("AcquireOpenedSlot", "dynamodb", "UpdateItem", 3),
    ("Attempt", "sqs", "SendMessage", 1),
]
# The submitter's calls for that attempt, in order: a slot of SubmitJob's rate (jobline.quota), the
# attempt's ticket, the claim of the row, the submit, the job's id on the attempt.
SUBMITTER_CALLS = [
    ("dynamodb", "PutItem"),
    ("dynamodb", "UpdateItem"),
    ("dynamodb", "UpdateItem"),
    ("batch", "SubmitJob"),
    ("dynamodb", "UpdateItem"),
]
SUBMITTER_STEPS = ["quota", "ticket", "claim", "submit", "record"]
# The slot consumer's calls for the stream record of the run's end (jobline.slots.run_ended): the
# oldest waiter looked up, none: the run's slot released, then free slots offered to waiters.
RUN_STREAM_CALLS = [("dynamodb", "Query"), ("dynamodb", "UpdateItem"), ("dynamodb", "Query")]


def start_run(stack: Stack) -> Any:
    """A run started cleanly (the handler's calls are not under test here), its job's slot item
    new (the injector fixture deletes it)."""
    trigger = s3_drop(stack)
    (request,) = triggers.from_s3(trigger.events[0], stack.deps.catalog)
    stack.deps.starter.start(request)
    return trigger


def slot_problems(stack: Stack, run_id: str) -> list[str]:
    item = stack.client("dynamodb").get_item(TableName="runs", Key={"pk": {"S": f"SLOT#{BATCH_JOB}"}}).get("Item", {})
    return (
        ["lost run: the run still holds a concurrency slot"] if run_id in item.get("holders", {}).get("M", {}) else []
    )


def test_the_enumerated_task_calls_are_the_calls_an_execution_makes(stack: Stack, injector: Injector) -> None:
    trigger = start_run(stack)
    stack.settle([trigger.run_id], injector)
    arn = run_execution_arn(stack.deps.settings, stack.deps.catalog, stack.deps.table.get_run(trigger.run_id))
    events = stack.client("stepfunctions").get_execution_history(executionArn=arn)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]
    assert entered[: len(TASK_CALLS)] == [state for state, *_ in TASK_CALLS]
    # The log holds the calls that got an answer: AcquireSlot's refusal is not in it.
    assert injector.sequence("engine") == [(s, o) for _, s, o, _ in TASK_CALLS[1:]]
    assert injector.sequence("handler", "submitter") == SUBMITTER_CALLS
    assert injector.sequence("handler", "run_stream") == RUN_STREAM_CALLS
    assert run_problems(stack, trigger.run_id, trigger.event, Ledger()) == []
    assert slot_problems(stack, trigger.run_id) == []


def outcome(stack: Stack, injector: Injector, run_id: str, event: Any, before_sweep: float = 20) -> list[str]:
    """The run carried on (for `before_sweep` seconds at most), the reconciler's next sweep, the
    run carried on again: what is wrong."""
    ledger = Ledger()
    stack.settle([run_id], injector, before_sweep)
    sweep(ledger, injector, stack)
    stack.settle([run_id], injector)
    problems = unhandled(ledger) + run_problems(stack, run_id, event, ledger)
    return problems + slot_problems(stack, run_id)


# A lost response in a callback Task (Attempt's sqs:sendMessage.waitForTaskToken, WaitForSlot's
# aws-sdk:dynamodb:updateItem.waitForTaskToken) is the service's SdkClientException, which their
# retriers list: the call is made again with a new try's token, which the submitter's ticket or the
# row's slot_token then holds.
def _case(call: tuple[Any, ...], kind: Any) -> Any:
    return pytest.param(*call, kind, id=f"{call[0]}-{call[2]}-{kind}")


@pytest.mark.parametrize(
    ("state", "service", "operation", "nth", "kind"),
    [_case(call, kind) for call in TASK_CALLS for kind in ENGINE_KINDS],
)
def test_a_run_survives_a_fault_in_a_task_state(
    stack: Stack, injector: Injector, state: str, service: str, operation: str, nth: int, kind: Any
) -> None:
    injector.rules.append(Rule(service, operation, nth, kind, origin="engine"))
    trigger = start_run(stack)
    problems = outcome(stack, injector, trigger.run_id, trigger.event)
    TALLY.record("state machine", f"{state} {service}.{operation} {kind}", injector, Ledger(), problems)
    assert injector.fired, "the fault never fired"
    assert problems == []


# Issue 10's last gap healed: a SubmitJob whose response is lost (the job runs) is handed back
# until its lease ends; the redelivery finds the job by its name and records it (no second job).
@pytest.mark.parametrize(
    ("index", "kind"),
    [
        pytest.param(index, kind, id=f"{SUBMITTER_STEPS[index]}-{SUBMITTER_CALLS[index][1]}-{kind}")
        for index in range(len(SUBMITTER_CALLS))
        for kind in KINDS
    ],
)
def test_an_attempt_is_submitted_once_under_a_fault_in_the_submitter(
    stack: Stack, injector: Injector, index: int, kind: Any
) -> None:
    service, operation = SUBMITTER_CALLS[index]
    nth = SUBMITTER_CALLS[: index + 1].count((service, operation))
    injector.rules.append(Rule(service, operation, nth, kind, scope="submitter"))
    trigger = start_run(stack)
    problems = outcome(stack, injector, trigger.run_id, trigger.event)
    TALLY.record(
        "submitter", f"{SUBMITTER_STEPS[index]} {service}.{operation} {kind}", injector, stack.background, problems
    )
    assert injector.fired, "the fault never fired"
    assert problems == []


@pytest.mark.parametrize(
    ("index", "kind", "outage"),
    [
        pytest.param(
            index, kind, outage, id=f"{RUN_STREAM_CALLS[index][1]}{index + 1}-{kind}{'-outage' if outage else ''}"
        )
        for index in range(len(RUN_STREAM_CALLS))
        for kind, outage in [*((k, False) for k in KINDS), *((k, True) for k in OUTAGE_KINDS)]
    ],
)
def test_a_slot_is_released_under_a_fault_in_the_stream_consumer(
    stack: Stack, injector: Injector, index: int, kind: Any, outage: bool
) -> None:
    """The stream retries the record (a partial batch response, or the whole batch after a crash),
    then gives up on it; the reconciler's slot sweep releases what a lost record held."""
    service, operation = RUN_STREAM_CALLS[index]
    nth = RUN_STREAM_CALLS[: index + 1].count((service, operation))
    injector.rules.append(Rule(service, operation, nth, kind, outage=outage, scope="run_stream"))
    trigger = start_run(stack)
    problems = outcome(stack, injector, trigger.run_id, trigger.event)
    case = f"{service}.{operation}#{index + 1} {kind}{' outage' if outage else ''}"
    TALLY.record("run_stream", case, injector, stack.background, problems)
    assert injector.fired, "the fault never fired"
    assert problems == []


# A request Batch refuses (ClientException): the submitter's calls after the refused SubmitJob,
# which ends the run FAILED SubmitFailed and fails the attempt's task (Jobline.SubmitFailed).
# (The quota slot is a PutItem: the UpdateItems are the ticket, the claim, then the run's end.)
REFUSED_CALLS = [("dynamodb", "UpdateItem", 3), ("stepfunctions", "SendTaskFailure", 1)]


def refused_run(stack: Stack) -> tuple[str, Any]:
    job = stack.deps.catalog.get(REFUSED_JOB)
    event = {"refused": len(stack.compute.batch_jobs)}
    key = f"manual:refused-{uuid.uuid4().hex}"
    trigger = triggers.Trigger(type="manual", key=key, source="test", event=event)
    return stack.deps.starter.start(triggers.RunRequest(job=job, trigger=trigger, arguments={})).run_id, event


@pytest.mark.parametrize(
    ("service", "operation", "nth", "kind"),
    [pytest.param(*call, kind, id=f"{call[1]}-{kind}") for call in REFUSED_CALLS for kind in KINDS],
)
def test_a_refused_submit_ends_its_run_under_a_fault(
    stack: Stack, injector: Injector, service: str, operation: str, nth: int, kind: Any
) -> None:
    injector.rules.append(Rule(service, operation, nth, kind, scope="submitter"))
    run_id, event = refused_run(stack)
    ledger = Ledger()
    stack.settle([run_id], injector)
    sweep(ledger, injector, stack)
    stack.settle([run_id], injector)
    problems = unhandled(ledger) + run_problems(stack, run_id, event, ledger, expected_status="FAILED")
    if (reason := (stack.deps.table.get_run(run_id) or {}).get("reason")) != "SubmitFailed":
        problems.append(f"wrong outcome: reason {reason}, not SubmitFailed")
    TALLY.record("submitter", f"refused {service}.{operation} {kind}", injector, stack.background, problems)
    assert injector.fired, "the fault never fired"
    assert problems == []


# A run that finds its job's slots full: AcquireSlot refused (ConditionalCheckFailed), WaitForSlot
# puts its token on its row; the slot consumer sees it register (the slots are still full).
WAITING_CALLS = [("AcquireSlot", "dynamodb", "UpdateItem", 1), ("WaitForSlot", "dynamodb", "UpdateItem", 2)]


def fill_slots(stack: Stack) -> None:
    """The job's slots held by runs that are gone (their end's stream records were lost): only the
    reconciler's slot sweep frees them, then serves the oldest waiter."""
    holders = {f"gone-{n}": {"S": "2026-11-21T00:00:00Z"} for n in range(SLOT_LIMIT)}
    stack.client("dynamodb").put_item(
        TableName="runs", Item={"pk": {"S": f"SLOT#{BATCH_JOB}"}, "holders": {"M": holders}}
    )


@pytest.mark.parametrize(
    ("state", "service", "operation", "nth", "kind"),
    [_case(call, kind) for call in WAITING_CALLS for kind in ENGINE_KINDS],
)
def test_a_waiting_run_is_served_under_a_fault_in_its_wait(
    stack: Stack, injector: Injector, state: str, service: str, operation: str, nth: int, kind: Any
) -> None:
    fill_slots(stack)
    injector.rules.append(Rule(service, operation, nth, kind, origin="engine"))
    trigger = start_run(stack)
    problems = outcome(stack, injector, trigger.run_id, trigger.event, before_sweep=3)
    TALLY.record("state machine", f"waiting {state} {service}.{operation} {kind}", injector, Ledger(), problems)
    assert injector.fired, "the fault never fired"
    assert problems == []
