"""Logical triggers as AWS delivers them to each trigger handler (S3 and bus deliveries through
their intake queues, and an operator's start through the API's operations), each with its run id
and the trigger event its run must keep."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel

from jobline import triggers
from jobline.operations import get_operations
from tests.faults.injection import Injector
from tests.faults.redelivery import Ledger, call_api, deliver_async, deliver_sqs, sqs_record
from tests.faults.stack import BATCH_JOB, Stack

EVENTS = Path(__file__).parents[2] / "events"
_serial = itertools.count(1)


@dataclass
class LogicalTrigger:
    handler: str
    events: list[Any]  # each delivery's payload; duplicates of one logical trigger
    run_id: str | None  # None: a trigger that must end as a rejection
    event: Any  # what the run's row, execution and job must see: the first delivery's event
    deliver: Callable[[Ledger, Injector, Stack, Any], Any]


def _async(handler: str) -> Callable[[Ledger, Injector, Stack, Any], Any]:
    return lambda ledger, injector, stack, event: deliver_async(
        ledger, injector, stack.handlers[handler].handler, event
    )


def _intake(handler: str) -> Callable[[Ledger, Injector, Stack, Any], Any]:
    """A rule's delivery, queued in the handler's intake queue (one message per delivery)."""
    ids = itertools.count(1)
    return lambda ledger, injector, stack, delivery: deliver_sqs(
        ledger, injector, stack.handlers[handler].handler, {f"{handler}-{next(ids)}": json.dumps(delivery)}
    )


def _sqs(ledger: Ledger, injector: Injector, stack: Stack, message: tuple[str, str]) -> None:
    deliver_sqs(ledger, injector, stack.handlers["sqs_trigger"].handler, dict([message]))


def _api(ledger: Ledger, injector: Injector, stack: Stack, request: dict[str, Any]) -> Any:
    return call_api(ledger, injector, lambda: get_operations().start_run(**request))


def s3_drop(stack: Stack) -> LogicalTrigger:
    n = next(_serial)
    delivery = json.loads((EVENTS / "s3-object-created.json").read_text()) | {"job": BATCH_JOB, "trigger": 0}
    delivery["event"]["id"] = f"s3-event-{n}"
    delivery["event"]["detail"]["object"].update(key=f"incoming/{n}.csv", sequencer=f"{n:018X}")
    (request,) = triggers.from_s3(delivery, stack.deps.catalog)
    return LogicalTrigger("s3_trigger", [delivery], request.run_id, request.trigger.event, _intake("s3_trigger"))


def bus_event(stack: Stack, duplicates: int = 0, size: int = 0) -> LogicalTrigger:
    """A bus event and `duplicates` other events with its idempotency key (same logical trigger);
    `size` pads its detail (over the inline limit, the run's event travels through S3)."""
    n = next(_serial)
    base = json.loads((EVENTS / "bus-report-requested.json").read_text()) | {"job": BATCH_JOB, "trigger": 0}
    base["event"].update(source="acme.faults", **{"detail-type": "Count Requested"})
    base["event"]["detail"] = {"request_id": f"req-{n}", "note": "first", "padding": "p" * size}
    events = [base]
    for copy_number in range(duplicates):
        other = copy.deepcopy(base)
        other["event"].update(id=f"bus-{n}-{copy_number}", time=f"2026-11-21T01:00:{copy_number + 1:02d}Z")
        other["event"]["detail"]["note"] = f"duplicate {copy_number}"
        events.append(other)
    (request,) = triggers.from_bus(base, stack.deps.catalog)
    return LogicalTrigger("bus_trigger", events, request.run_id, request.trigger.event, _intake("bus_trigger"))


def schedule_fire(stack: Stack, job: str = BATCH_JOB) -> LogicalTrigger:
    n = next(_serial)
    event = {"job": job, "schedule": "hourly", "scheduled_time": f"2026-11-21T{n // 60 % 24:02d}:{n % 60:02d}:00Z"}
    if job != BATCH_JOB:  # an unknown job: the schedule's event must end in the event DLQ
        return LogicalTrigger("schedule_trigger", [event], None, event, _async("schedule_trigger"))
    request = triggers.from_schedule(triggers.ScheduleInput.model_validate(event), event, stack.deps.catalog)
    return LogicalTrigger(
        "schedule_trigger", [event], request.run_id, request.trigger.event, _async("schedule_trigger")
    )


def sqs_message(stack: Stack) -> LogicalTrigger:
    n = next(_serial)
    body = json.dumps({"job": BATCH_JOB, "idempotency_key": f"order-{n}"})
    message = (f"message-{n}", body)
    record = SqsRecordModel.model_validate(sqs_record(*message, 1))
    request = triggers.from_sqs(record, triggers.SqsJobMessage.model_validate_json(body), stack.deps.catalog)
    return LogicalTrigger("sqs_trigger", [message], request.run_id, request.trigger.event, _sqs)


def api_start(stack: Stack) -> LogicalTrigger:
    n = next(_serial)
    request = {"job_name": BATCH_JOB, "parameters": {}, "client_token": f"token-{n}"}
    event = {"job": BATCH_JOB, "parameters": {}, "client_token": f"token-{n}"}
    job = stack.deps.catalog.get(BATCH_JOB)
    trigger = triggers.Trigger(type="manual", key=f"manual:token-{n}", source="manual", event=event)
    run_id = triggers.RunRequest(job=job, trigger=trigger, arguments={}).run_id
    return LogicalTrigger("api", [request], run_id, event, _api)


# Each trigger kind and the AWS calls its first delivery makes, in order (checked against a clean
# run by test_the_enumerated_calls_are_the_calls_each_handler_makes). A run is two conditional
# PutItems: its data (RUNDATA#), then its row (RUN#).
CREATE = [("dynamodb", "PutItem"), ("dynamodb", "PutItem"), ("stepfunctions", "StartExecution")]
TRIGGERS: dict[str, tuple[Callable[[Stack], LogicalTrigger], list[tuple[str, str]]]] = {
    "s3": (s3_drop, CREATE),
    "bus-large-event": (lambda stack: bus_event(stack, size=7000), [("s3", "PutObject"), *CREATE]),
    "bus": (bus_event, CREATE),
    "schedule": (schedule_fire, CREATE),
    "schedule-unknown-job": (lambda stack: schedule_fire(stack, job="no-such-job"), [("sqs", "SendMessage")]),
    "sqs": (sqs_message, CREATE),
    "api-start": (api_start, [("dynamodb", "GetItem"), *CREATE]),
}
