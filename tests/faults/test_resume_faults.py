"""Faults in the state change handler, the reconciler and the notify handler. The first two share
one situation: a Batch service job's execution waits on its task token, the job ends, and either
its terminal event reaches the state change handler or (event lost) the reconciler's sweep finds
the run. Either must move the row to the job's outcome and resume the execution, whatever fault
hits their calls. Notify: each run that became final is announced on the job bus once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobline import triggers
from tests.faults.injection import KINDS, OUTAGE_KINDS, Injector, Rule
from tests.faults.outcome import TALLY, run_problems, unhandled
from tests.faults.redelivery import Ledger, deliver_async, deliver_sqs, deliver_stream
from tests.faults.stack import SERVICE_JOB, Stack
from tests.faults.test_trigger_faults import SCHEDULED_EVENT, sweep
from tests.waiting import wait_until

pytestmark = pytest.mark.faults
# One event, one row write: the attempt's ticket (for its token), the row's UpdateItem, the answer.
STATE_CHANGE_CALLS = [("dynamodb", "GetItem"), ("dynamodb", "UpdateItem"), ("stepfunctions", "SendTaskSuccess")]
# The sweep lists the running executions of each run machine (for the stale rows whose execution
# runs, and for any whose run has ended), then queries by-status-keys per live status (then reads
# those rows in one BatchGetItem) and heals each stale row as it is read: PENDING, STARTING (the
# waiting run: described, its row moved, its execution resumed), then RUNNING; then the executions
# that outlived their run (a row read each); then the limited job's slot (its holders, its waiters).
RECONCILER_CALLS = [
    ("stepfunctions", "ListExecutions"),
    ("stepfunctions", "ListExecutions"),
    ("dynamodb", "Query"),
    ("dynamodb", "Query"),
    ("dynamodb", "BatchGetItem"),
    ("batch", "DescribeServiceJob"),
    ("dynamodb", "GetItem"),
    ("dynamodb", "UpdateItem"),
    ("stepfunctions", "SendTaskSuccess"),
    ("dynamodb", "Query"),
    ("dynamodb", "GetItem"),  # heal_ended's row reads
    ("dynamodb", "Query"),
]
# The matrix faults the first listing and the first Query (the others fail the sweep the same
# way) and each heal call.
RECONCILER_FAULTED = [0, 2, 4, 5, 6, 7, 8]
COMPLETED = "Received status from SageMaker: Training job completed"
_serial = iter(range(1, 10**6))


def waiting_service_job(stack: Stack, injector: Injector) -> tuple[str, Any, dict[str, Any]]:
    """A service job's run whose execution waits on its attempt's token (the submitter submitted
    its job); the job then ends. Returns the run id, the job, and the trigger event its run keeps."""
    job = stack.deps.catalog.get(SERVICE_JOB)
    event = {"order": next(_serial)}
    trigger = triggers.Trigger(type="manual", key=f"manual:resume-{event['order']}", source="test", event=event)
    run_id = stack.deps.starter.start(triggers.RunRequest(job=job, trigger=trigger, arguments={})).run_id
    wait_until(lambda: [stack.carry(injector)] and run_id in stack.compute.service_jobs, 30, what="its service job")
    held = stack.compute.service_jobs[run_id]
    held.finish("SUCCEEDED", COMPLETED)
    return run_id, held, event


def terminal_event(held: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"event-{held.job_id}",
        "detail-type": "Batch Service Job State Change",
        "source": "aws.batch",
        "account": held.account_id,
        "time": "2026-11-21T00:10:00Z",
        "region": held.region,
        "resources": [held.arn],
        "detail": held.describe(),
    }


def finish(
    stack: Stack, injector: Injector, ledger: Ledger, handler: str, case: str, run_id: str, event: Any
) -> list[str]:
    """The reconciler's next scheduled sweep, then what is wrong with the run (tallied)."""
    sweep(ledger, injector, stack)
    stack.settle([run_id], injector)
    problems = unhandled(ledger) + run_problems(stack, run_id, event, ledger)
    stack.dlq_bodies()
    TALLY.record(handler, case, injector, ledger, problems)
    return problems


def test_the_enumerated_calls_are_the_calls_the_handlers_make(stack: Stack, injector: Injector) -> None:
    run_id, held, event = waiting_service_job(stack, injector)
    ledger = Ledger()
    deliver_async(ledger, injector, stack.handlers["state_change"].handler, terminal_event(held))
    assert injector.sequence() == STATE_CHANGE_CALLS
    injector.reset()
    run_id, held, event = waiting_service_job(stack, injector)
    deliver_async(ledger, injector, stack.handlers["reconciler"].handler, SCHEDULED_EVENT)
    # In order; other runs' rows an earlier case left live may add calls of their own around them.
    remaining = iter(injector.sequence())
    assert all(call in remaining for call in RECONCILER_CALLS), repr(injector.sequence())[:3000]
    stack.settle([run_id], injector)
    assert run_problems(stack, run_id, event, ledger) == []


def matrix(calls: list[tuple[str, str]], indexes: list[int] | None = None) -> list[Any]:
    return [
        pytest.param(index, kind, outage, id=f"{calls[index][1]}{index + 1}-{kind}{'-outage' if outage else ''}")
        for index in (range(len(calls)) if indexes is None else indexes)
        for kind, outage in [*((k, False) for k in KINDS), *((k, True) for k in OUTAGE_KINDS)]
    ]


def rule(calls: list[tuple[str, str]], index: int, kind: Any, outage: bool) -> Rule:
    service, operation = calls[index]
    return Rule(service, operation, calls[: index + 1].count(calls[index]), kind, outage=outage)


@pytest.mark.parametrize(("index", "kind", "outage"), matrix(STATE_CHANGE_CALLS))
def test_a_terminal_event_resumes_its_execution_under_a_fault(
    stack: Stack, injector: Injector, index: int, kind: Any, outage: bool
) -> None:
    run_id, held, event = waiting_service_job(stack, injector)
    injector.rules.append(rule(STATE_CHANGE_CALLS, index, kind, outage))
    ledger = Ledger()
    deliver_async(ledger, injector, stack.handlers["state_change"].handler, terminal_event(held))
    case = f"{'.'.join(STATE_CHANGE_CALLS[index])} {kind}{' outage' if outage else ''}"
    problems = finish(stack, injector, ledger, "state_change", case, run_id, event)
    assert injector.fired, "the fault never fired"
    assert problems == []  # one run, resumed, with its job's outcome; no unhandled exception


@pytest.mark.parametrize(("index", "kind", "outage"), matrix(RECONCILER_CALLS, RECONCILER_FAULTED))
def test_the_reconciler_heals_a_lost_event_under_a_fault(
    stack: Stack, injector: Injector, index: int, kind: Any, outage: bool
) -> None:
    run_id, _, event = waiting_service_job(stack, injector)
    injector.rules.append(rule(RECONCILER_CALLS, index, kind, outage))
    ledger = Ledger()
    deliver_async(ledger, injector, stack.handlers["reconciler"].handler, SCHEDULED_EVENT)
    case = f"{'.'.join(RECONCILER_CALLS[index])}#{index + 1} {kind}{' outage' if outage else ''}"
    problems = finish(stack, injector, ledger, "reconciler", case, run_id, event)
    assert injector.fired, "the fault never fired"
    assert problems == []  # one run, resumed, with its job's outcome; no unhandled exception


# ---------------------------------------------------------------- notify
def stream_record(row: dict[str, Any], n: int) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    serialize = TypeSerializer().serialize
    image = lambda values: {k: serialize(v) for k, v in values.items()}  # noqa: E731
    old = {**row, "status": "RUNNING", "status_rank": 20}
    return {
        "eventID": f"event-{n}",
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/runs/stream/2026-11-21T00:00:00.000",
        "dynamodb": {
            "Keys": {"pk": {"S": row["pk"]}},
            "NewImage": image(row),
            "OldImage": image(old),
            "SequenceNumber": f"{n:021d}",
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


@pytest.mark.parametrize(
    ("kind", "outage"),
    [
        pytest.param(k, o, id=f"PutEvents-{k}{'-outage' if o else ''}")
        for k, o in [*((k, False) for k in KINDS), *((k, True) for k in OUTAGE_KINDS)]
    ],
)
def test_a_final_run_is_announced_once_under_a_fault(stack: Stack, injector: Injector, kind: Any, outage: bool) -> None:
    n = next(_serial)
    row = {
        "pk": f"RUN#fault-count-{n:020x}",
        "run_id": f"fault-count-{n:020x}",
        "record_type": "RUN",
        "job": "fault-count",
        "backend": "batch",
        "status": "SUCCEEDED",
        "reason": "Completed",
        "status_rank": 30,
        "attempt": 1,
        "max_attempts": 1,
        "attempts": {},
        "created_at": "2026-11-21T00:00:00.000Z",
        "updated_at": "2026-11-21T00:01:00.000Z",
        "status_time": "2026-11-21T00:01:00.000Z",
        "trigger": {"type": "manual", "key": "k", "source": "test"},
        "arguments": {},
        "version": 3,
    }
    injector.rules.append(Rule("events", "PutEvents", 1, kind, outage=outage))
    ledger = Ledger()
    deliver_stream(ledger, injector, stack.handlers["notify"].handler, [stream_record(row, n)])
    sweep(ledger, injector, stack)
    # A branch that queues refused notifications for redrive: the queue's event source feeds them back.
    redrive = stack.drain(stack.client("sqs").get_queue_url(QueueName="notification-redrive")["QueueUrl"])
    deliver_sqs(ledger, injector, stack.handlers["notify"].handler, redrive)
    sent = [e for call in injector.made("events", "PutEvents") for e in call["Entries"] if row["run_id"] in e["Detail"]]
    problems = unhandled(ledger)
    if not sent:
        problems.append(
            "lost notification: no Run State Change event" + (" (parked in the DLQ)" if ledger.parked else "")
        )
    ids = {json.loads(entry["Detail"]).get("notification_id") for entry in sent}
    if len(sent) > 1 and (len(ids) != 1 or None in ids):
        # At least once is the contract when every copy carries one stable id to dedupe on.
        problems.append(f"duplicate notification: {len(sent)} Run State Change events without one stable id")
    stack.dlq_bodies()
    TALLY.record("notify", f"events.PutEvents {kind}{' outage' if outage else ''}", injector, ledger, problems)
    assert injector.fired, "the fault never fired"
    assert problems == []
