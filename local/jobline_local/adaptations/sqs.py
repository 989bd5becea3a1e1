"""Adaptations of moto's SQS (speed only: every answer stays moto's own).

moto 5.2.5 walks every message of a queue for each count it answers (ApproximateNumberOfMessages,
...Delayed, ...NotVisible), reads the clock twice per message on each walk, and computes all of a
queue's attributes, the three counts among them, wherever it needs one: a send reads
ContentBasedDeduplication that way, a receive checks each message's retention that way, and
GetQueueAttributes for one name computes them three times. So a send to a queue of n messages
costs three walks of n, and a burst that fills a queue costs n² clock reads: the largest single
cost of a burst locally (39% of the server's time in a 3,000-file burst, most of it in sends)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
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


class QueueAttributes(Mapping[str, Any]):
    """A queue's attributes as moto's `Queue.attributes` gives them (the same names, in the same
    order, the same values), each computed when it is read rather than all at once."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        names = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        self._names = dict.fromkeys(names)

    def __getitem__(self, name: str) -> Any:
        from moto.core.utils import camelcase_to_underscores

        if name not in self._names:
            raise KeyError(name)
        queue = self._queue
        if name == "Policy" and queue.policy:
            return queue.policy
        if name == "RedrivePolicy" and queue.redrive_policy:
            return json.dumps(queue.redrive_policy)
        value = getattr(queue, camelcase_to_underscores(name))
        return str(value).lower() if isinstance(value, bool) else value

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def adapt_sqs_queue_walks() -> None:
    """A queue's attributes computed when read, and each count one walk with one clock reading
    (a message is visible after its `visible_at` and delayed before its `delayed_until`, in epoch
    milliseconds, as moto's `Message.visible` and `Message.delayed` decide)."""
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import Queue

    def messages(self: Any) -> list[Any]:
        now = unix_time_millis()
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    def delayed(self: Any) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    def not_visible(self: Any) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if not now > m.visible_at)

    replace(Queue, "attributes", property(QueueAttributes))
    replace(Queue, "messages", property(messages))
    replace(Queue, "approximate_number_of_messages_delayed", property(delayed))
    replace(Queue, "approximate_number_of_messages_not_visible", property(not_visible))
