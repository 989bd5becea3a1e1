"""Trigger events, as typed models, and how each becomes run requests of catalog jobs.

A run's identity is deterministic from its trigger, so a duplicate delivery names the same run:
S3 by bucket, key, version id and sequencer; SQS by the body's idempotency_key or the message
id; a schedule by its name and scheduled time; a bus event by its idempotency key or event id.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models import (
    EventBridgeModel,
    S3EventNotificationEventBridgeModel,
    SqsRecordModel,
)
from pydantic import BaseModel, ConfigDict, Field

from jobline import patterns
from jobline.catalog import Catalog, Job
from jobline.errors import MalformedEvent, NoMatchingJob

TriggerType = Literal["s3", "sqs", "schedule", "bus", "manual", "retry"]


class Trigger(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: TriggerType
    key: str = Field(description="What makes this trigger one logical event")
    source: str = Field(description="Where it came from, for people: s3://bucket/key, schedule name...")
    event: dict[str, Any] = Field(description="The event as delivered; handed to the job")


class RunRequest(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

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

    model_config = ConfigDict(extra="forbid")

    job: str = Field(min_length=1, max_length=64)
    arguments: dict[str, str] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)


class ScheduleInput(BaseModel):
    """What an EventBridge Scheduler schedule sends (see jobline.codegen.schedule_input)."""

    model_config = ConfigDict(extra="forbid")

    job: str
    schedule: str
    scheduled_time: str = Field(min_length=1)
    execution_id: str | None = None
    arguments: dict[str, str] = Field(default_factory=dict)


def from_s3(event: S3EventNotificationEventBridgeModel, raw: dict[str, Any], catalog: Catalog) -> list[RunRequest]:
    bucket, obj = event.detail.bucket.name, event.detail.object
    jobs = [job for job in catalog.jobs if any(t.matches(obj.key) for t in job.triggers.s3)]
    if not jobs:
        raise NoMatchingJob(f"no job has an S3 trigger matching s3://{bucket}/{obj.key}")
    trigger = Trigger(
        type="s3",
        key=f"s3:{bucket}:{obj.key}:{obj.version_id or ''}:{obj.sequencer or ''}",
        source=f"s3://{bucket}/{obj.key}",
        event=raw,
    )
    return [RunRequest(job=job, trigger=trigger) for job in jobs]


def from_bus(event: EventBridgeModel, raw: dict[str, Any], catalog: Catalog) -> list[RunRequest]:
    requests = []
    for job in catalog.jobs:
        for bus_trigger in job.triggers.bus:
            if not patterns.matches(bus_trigger.pattern, raw):
                continue
            key = f"bus-event:{event.id}"
            if bus_trigger.idempotency_key:
                value = patterns.lookup(raw, bus_trigger.idempotency_key)
                if value is None:
                    raise MalformedEvent(
                        f"event {event.id} matches job {job.name!r} but has no {bus_trigger.idempotency_key}"
                    )
                key = f"bus:{value}"
            arguments = {
                name: _argument(patterns.lookup(raw, path), job.name, name, path)
                for name, path in bus_trigger.arguments.items()
                if patterns.lookup(raw, path) is not None
            }
            source = f"bus: {event.source} / {event.detail_type}"
            trigger = Trigger(type="bus", key=key, source=source, event=raw)
            requests.append(RunRequest(job=job, trigger=trigger, arguments=arguments))
            break  # one run per job per event, whichever of its bus triggers matched first
    if not requests:
        raise NoMatchingJob(f"event {event.id} ({event.source} / {event.detail_type}) matches no job's bus trigger")
    return requests


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
