"""Adaptations of moto's SQS (speed only: every answer stays moto's own).

moto 5.2.5 checks each message it receives against the queue's retention period by computing all
of the queue's attributes, ApproximateNumberOfMessages and the other counts among them, each a walk
over every message of the queue: a receive from a queue of n messages costs n² steps, the largest
single cost of a burst locally. The check needs one number, the queue's MessageRetentionPeriod."""

from __future__ import annotations

from typing import Any

from jobline_local.adaptations.patching import replace


def adapt_sqs_retention_check() -> None:
    """The retention check reads the queue's retention period only (moto's own rule otherwise)."""
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention_period = int(self.get_queue(queue_name).message_retention_period)
        return retention_period + message.sent_timestamp / 1000 > unix_time()

    replace(SQSBackend, "is_message_valid_based_on_retention_period", is_message_valid_based_on_retention_period)
