"""Trigger events, as typed models, and how each becomes run requests of catalog jobs.

Which job an S3 or bus event is for, EventBridge decides: each of those triggers is an EventBridge
rule (generated from the catalog) whose target input names the job and the trigger.
A run's identity is deterministic from its trigger, so a duplicate delivery names the same run:
S3 by bucket, key, version id and sequencer; SQS by the body's idempotency_key or the message
id; a schedule by its name and scheduled time; a bus event by its idempotency key or event id.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobline.catalog import Catalog, Job
from jobline.errors import MalformedEvent, NoMatchingJob

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parser.models import SqsRecordModel

TriggerType = Literal["s3", "sqs", "schedule", "bus", "manual", "retry", "manifest"]


class Trigger(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    type: TriggerType
    key: str = Field(description="What makes this trigger one logical event")
    source: str = Field(description="Where it came from, for people: s3://bucket/key, schedule name...")
    event: dict[str, Any] = Field(description="The event as delivered; handed to the job")


class RunRequest(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, defer_build=True)

    job: Job
    trigger: Trigger
    arguments: dict[str, str] = Field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return run_id(self.job.name, self.trigger.key)


def run_id(job_name: str, trigger_key: str) -> str:
    """`<job>-<20 hex>`: at most 61 characters, valid as an execution name and a Batch job name."""
    digest = hashlib.sha256(f"{job_name}\n{trigger_key}".encode()).hexdigest()[:20]
    return f"{job_name}-{digest}"


class SqsJobMessage(BaseModel):
    """The body of a message on the trigger queue."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    job: str = Field(min_length=1, max_length=64)
    arguments: dict[str, str] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)


class ScheduleInput(BaseModel):
    """What an EventBridge Scheduler schedule sends (see jobline.codegen.schedule_input)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    job: str
    schedule: str
    scheduled_time: str = Field(min_length=1)
    execution_id: str | None = None
    arguments: dict[str, str] = Field(default_factory=dict)


class RuleDelivery(BaseModel):
    """What a generated EventBridge rule hands its trigger function: the job and which of its
    triggers the rule stands for, and the event EventBridge matched (jobline_tools.codegen renders
    the rule's InputTransformer)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    job: str = Field(min_length=1)
    trigger: int = Field(ge=0, description="Index in the job's triggers.s3 or triggers.bus")
    event: dict[str, Any]


def _delivered(raw: dict[str, Any], catalog: Catalog, kind: Literal["s3", "bus"]) -> tuple[Job, int, dict[str, Any]]:
    delivery = RuleDelivery.model_validate(raw)
    job = catalog.get(delivery.job)
    if delivery.trigger >= len(getattr(job.triggers, kind)):
        # Only a rule deployed from another catalog than the code's (make generate skipped).
        raise NoMatchingJob(f"job {job.name!r} declares no triggers.{kind}[{delivery.trigger}]")
    return job, delivery.trigger, delivery.event


def from_s3(raw: dict[str, Any], catalog: Catalog) -> list[RunRequest]:
    """EventBridge matched the object to this job's S3 trigger; the key names the run."""
    # Powertools' parser models on first use: the package is a quarter of `import boto3`.
    from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel

    job, _, event = _delivered(raw, catalog, "s3")
    parsed = S3EventNotificationEventBridgeModel.model_validate(event)
    bucket, obj = parsed.detail.bucket.name, parsed.detail.object
    trigger = Trigger(
        type="s3",
        key=f"s3:{bucket}:{obj.key}:{obj.version_id or ''}:{obj.sequencer or ''}",
        source=f"s3://{bucket}/{obj.key}",
        event=event,
    )
    return [RunRequest(job=job, trigger=trigger)]


def from_bus(raw: dict[str, Any], catalog: Catalog) -> list[RunRequest]:
    """EventBridge matched the event to this bus trigger; its paths give the key and the arguments."""
    from aws_lambda_powertools.utilities.parser.models import EventBridgeModel  # on first use, as above

    job, index, event = _delivered(raw, catalog, "bus")
    parsed = EventBridgeModel.model_validate(event)
    bus_trigger = job.triggers.bus[index]
    key = f"bus-event:{parsed.id}"
    if bus_trigger.idempotency_key:
        value = lookup(event, bus_trigger.idempotency_key)
        if value is None:
            raise MalformedEvent(f"event {parsed.id} for job {job.name!r} has no {bus_trigger.idempotency_key}")
        key = f"bus:{value}"
    arguments = {
        name: _argument(lookup(event, path), job.name, name, path)
        for name, path in bus_trigger.arguments.items()
        if lookup(event, path) is not None
    }
    trigger = Trigger(type="bus", key=key, source=f"bus: {parsed.source} / {parsed.detail_type}", event=event)
    return [RunRequest(job=job, trigger=trigger, arguments=arguments)]


def from_schedule(schedule: ScheduleInput, raw: dict[str, Any], catalog: Catalog) -> RunRequest:
    job = catalog.get(schedule.job)
    if schedule.schedule not in {s.name for s in job.triggers.schedule}:
        raise NoMatchingJob(f"job {job.name!r} declares no schedule {schedule.schedule!r}")
    trigger = Trigger(
        type="schedule",
        key=f"schedule:{schedule.schedule}:{schedule.scheduled_time}",
        source=f"schedule {job.name}/{schedule.schedule} at {schedule.scheduled_time}",
        event=raw,
    )
    return RunRequest(job=job, trigger=trigger, arguments=schedule.arguments)


def from_sqs(record: SqsRecordModel, message: SqsJobMessage, catalog: Catalog) -> RunRequest:
    job = catalog.get(message.job)
    if not job.triggers.sqs:
        raise NoMatchingJob(f"job {job.name!r} does not accept SQS triggers (triggers.sqs is false)")
    key = f"sqs:{message.idempotency_key}" if message.idempotency_key else f"sqs-message:{record.messageId}"
    trigger = Trigger(
        type="sqs",
        key=key,
        source=f"sqs message {record.messageId}",
        event={"messageId": record.messageId, "eventSourceARN": record.eventSourceARN, "body": message.model_dump()},
    )
    return RunRequest(job=job, trigger=trigger, arguments=message.arguments)


def _argument(value: Any, job: str, name: str, path: str) -> str:
    if isinstance(value, dict | list):
        raise MalformedEvent(f"job {job!r}: argument {name!r} from {path} must be a scalar, got {type(value).__name__}")
    return str(value)


def lookup(event: dict[str, Any], dotted_path: str) -> Any:
    """The value at a dotted path such as `detail.order.id`, or None."""
    value: Any = event
    for part in dotted_path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value
