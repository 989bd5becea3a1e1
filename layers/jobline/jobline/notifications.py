"""`Run State Change` events on the job bus: one for each run that reaches a final status.

The run table's stream carries every write, whoever made it (the state machine, the state change
handler, an operator's stop). A run becomes final once (terminal statuses absorb), so exactly one
stream record has a non-final old image and a final new image: that record is the notification.
Records are handled in order and the first failure stops the batch, so Lambda retries from it and
no earlier record is sent twice; only a crash between a send and the batch's end repeats one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamRecordModel

from jobline import run_view
from jobline.observability import count, logger
from jobline.settings import get_settings
from jobline.status import TERMINAL, RunStatus

SOURCE = "jobline"
DETAIL_TYPE = "Run State Change"
FINAL = frozenset(status.value for status in TERMINAL)
ALERT = frozenset({RunStatus.FAILED.value, RunStatus.TIMEOUT.value})


def is_final_transition(old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
    if not old or not new or new.get("record_type") != "RUN":
        return False
    return old.get("status") not in FINAL and new.get("status") in FINAL


def event_entry(row: dict[str, Any], bus: str) -> dict[str, Any]:
    entry = {
        "EventBusName": bus,
        "Source": SOURCE,
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(run_view.summary(row), separators=(",", ":")),
    }
    if row.get("execution_arn"):
        entry["Resources"] = [row["execution_arn"]]
    return entry


@dataclass(frozen=True)
class Notifier:
    events: Any
    sns: Any
    bus: str
    failure_topic_arn: str

    def notify(self, row: dict[str, Any]) -> None:
        """The optional e-mail first, then the event: a failed event is retried with its e-mail,
        but a sent event is never repeated for the sake of an e-mail."""
        summary = run_view.summary(row)
        if self.failure_topic_arn and summary["status"] in ALERT:
            self.sns.publish(
                TopicArn=self.failure_topic_arn,
                Subject=f"jobline: {summary['job']} run {summary['status']}"[:100],
                Message=json.dumps(summary, indent=2),
            )
        result = self.events.put_events(Entries=[event_entry(row, self.bus)])
        if result.get("FailedEntryCount"):
            failure = result["Entries"][0]
            raise RuntimeError(f"PutEvents refused the event: {failure.get('ErrorCode')} {failure.get('ErrorMessage')}")


def process_stream(event: dict[str, Any], notifier: Notifier) -> dict[str, Any]:
    """A DynamoDB stream batch -> notifications; a partial batch response names the first failure."""
    for raw in event.get("Records", []):
        record = DynamoDBStreamRecordModel.model_validate(raw)
        old, new = record.dynamodb.OldImage, record.dynamodb.NewImage
        if not is_final_transition(old, new):
            continue
        try:
            notifier.notify(new)
        except Exception:
            logger.exception("notification failed; retried from this record", extra={"run_id": new.get("run_id")})
            return {"batchItemFailures": [{"itemIdentifier": record.dynamodb.SequenceNumber}]}
        logger.info("run state change sent", extra={"run_id": new["run_id"], "status": new["status"]})
        count("RunStateChangeEvents", Status=new["status"])
    return {"batchItemFailures": []}


@lru_cache(maxsize=1)
def get_notifier() -> Notifier:
    settings = get_settings()
    session = boto3.session.Session()
    return Notifier(
        events=session.client("events"),
        sns=session.client("sns"),
        bus=settings.job_bus_name,
        failure_topic_arn=settings.failure_topic_arn,
    )
