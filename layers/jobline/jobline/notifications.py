"""`Run State Change` events on the job bus: one for each run that reaches a final status.

The run table's stream carries every write, whoever made it (the state machine, the state change
handler, an operator's stop). A run becomes final once (terminal statuses absorb), so exactly one
stream record has a non-final old image and a final new image: that record is the notification.

Delivery is at least once, with a stable id: `detail.notification_id` is derived from the run id
and its final status, so every copy of one notification carries the same id and consumers dedupe
on it (PutEvents cannot set an event's own id). An event PutEvents refuses (an error, or the
entry failed in FailedEntryCount) is not dropped: it goes to the notification redrive queue,
from which this function sends it again (SQS retries it until maxReceiveCount, then keeps it in
the notification DLQ for an operator's redrive). Only when the queue refuses it too does the
stream batch fail from that record, and Lambda retries the stream from it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamRecordModel
from botocore.exceptions import BotoCoreError, ClientError

from jobline import run_view
from jobline.fanout_store import FanoutStore, record_run_end
from jobline.observability import count, logger
from jobline.status import TERMINAL, RunStatus

SOURCE = "jobline"
DETAIL_TYPE = "Run State Change"
FINAL = frozenset(status.value for status in TERMINAL)
ALERT = frozenset({RunStatus.FAILED.value, RunStatus.TIMEOUT.value})
# Namespace of notification ids (uuid5 of "<run id>/<final status>"); fixed forever.
NOTIFICATION_NAMESPACE = uuid.UUID("7d0a4a57-3f55-5d0c-9f3e-6a1b2c3d4e5f")


def is_final_transition(old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
    if not old or not new or new.get("record_type") != "RUN":
        return False
    return old.get("status") not in FINAL and new.get("status") in FINAL


def notification_id(row: dict[str, Any]) -> str:
    """The same for every copy of one run's notification: the run id and its final status."""
    return str(uuid.uuid5(NOTIFICATION_NAMESPACE, f"{row['run_id']}/{row['status']}"))


def event_entry(row: dict[str, Any], bus: str, state_machine_prefix: str) -> dict[str, Any]:
    detail = {"notification_id": notification_id(row), **run_view.summary(row)}
    entry = {
        "EventBusName": bus,
        "Source": SOURCE,
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(detail, separators=(",", ":")),
    }
    if arn := run_view.execution_arn(row, state_machine_prefix):
        entry["Resources"] = [arn]
    return entry


@dataclass(frozen=True)
class Notifier:
    events: Any
    sns: Any
    sqs: Any
    bus: str
    failure_topic_arn: str
    redrive_queue_url: str
    state_machine_prefix: str  # names each run's execution (the Resources of its event)
    fanouts: FanoutStore | None = None  # counts each fan-out item's end on its FANOUT# record

    def email(self, row: dict[str, Any]) -> None:
        """The optional e-mail, before the event: a failed e-mail is retried (with the stream), but a
        sent event is never repeated for the sake of an e-mail."""
        summary = run_view.summary(row)
        if self.failure_topic_arn and summary["status"] in ALERT:
            self.sns.publish(
                TopicArn=self.failure_topic_arn,
                Subject=f"jobline: {summary['job']} run {summary['status']}"[:100],
                Message=json.dumps(summary, indent=2),
            )

    def send(self, entry: dict[str, Any]) -> str | None:
        """PutEvents one entry; None when sent, else why not (the call failed, or the entry did)."""
        try:
            result = self.events.put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as error:  # after botocore's own retries
            return f"{type(error).__name__}: {error}"
        if result.get("FailedEntryCount"):
            failure = result["Entries"][0]
            return f"{failure.get('ErrorCode')}: {failure.get('ErrorMessage')}"
        return None

    def redrive_later(self, entry: dict[str, Any]) -> None:
        self.sqs.send_message(QueueUrl=self.redrive_queue_url, MessageBody=json.dumps(entry))


def process(event: dict[str, Any], notifier: Notifier) -> dict[str, Any]:
    """The notify function's two sources: the run table's stream, and the redrive queue."""
    records = event.get("Records", [])
    if records and records[0].get("eventSource") == "aws:sqs":
        return process_redrive(records, notifier)
    return process_stream(event, notifier)


def process_stream(event: dict[str, Any], notifier: Notifier) -> dict[str, Any]:
    """A DynamoDB stream batch -> notifications; a partial batch response names the first record
    that could neither be sent nor queued for redrive."""
    for raw in event.get("Records", []):
        record = DynamoDBStreamRecordModel.model_validate(raw)
        old, new = record.dynamodb.OldImage, record.dynamodb.NewImage
        if not is_final_transition(old, new):
            continue
        entry = event_entry(new, notifier.bus, notifier.state_machine_prefix)
        try:
            notifier.email(new)
            failure = notifier.send(entry)
            if failure:
                logger.warning(
                    "run state change refused; queued for redrive", extra={"run_id": new["run_id"], "reason": failure}
                )
                notifier.redrive_later(entry)
                count("RunStateChangeRedrives")
            # Last: if counting fails, the stream retries from this record (the event's copy dedupes).
            if notifier.fanouts is not None:
                record_run_end(new, notifier.fanouts)
            if failure:
                continue
        except Exception:
            logger.exception("notification failed; retried from this record", extra={"run_id": new.get("run_id")})
            return {"batchItemFailures": [{"itemIdentifier": record.dynamodb.SequenceNumber}]}
        logger.info("run state change sent", extra={"run_id": new["run_id"], "status": new["status"]})
        count("RunStateChangeEvents", Status=new["status"])
    return {"batchItemFailures": []}


def process_redrive(records: list[dict[str, Any]], notifier: Notifier) -> dict[str, Any]:
    """Redrive queue messages -> PutEvents again; each one that fails stays for SQS to retry."""
    failures = []
    for record in records:
        try:
            entry = json.loads(record["body"])
            failure = notifier.send(entry)
        except (ValueError, TypeError, KeyError) as error:  # not an entry: SQS parks it in the notification DLQ
            failure = f"not a PutEvents entry: {error}"
        if failure:
            logger.warning(
                "run state change redrive failed", extra={"message_id": record["messageId"], "reason": failure}
            )
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        count("RunStateChangeEvents", Status="redriven")
    return {"batchItemFailures": failures}


@lru_cache(maxsize=1)
def get_notifier() -> Notifier:
    import boto3  # on first use: importing boto3 and the settings is most of a cold import

    from jobline.settings import get_settings

    settings = get_settings()
    session = boto3.session.Session()
    return Notifier(
        events=session.client("events"),
        sns=session.client("sns"),
        sqs=session.client("sqs"),
        bus=settings.job_bus_name,
        failure_topic_arn=settings.failure_topic_arn,
        redrive_queue_url=settings.notification_redrive_queue_url,
        state_machine_prefix=settings.state_machine_prefix,
        fanouts=FanoutStore(session.client("dynamodb"), settings.run_table_name),
    )
