"""Adaptations of moto's SQS: a queue's messages changed one request at a time, and its walks
made cheap (speed only: every answer stays moto's own).

moto 5.2.5 walks every message of a queue for each count it answers (ApproximateNumberOfMessages,
...Delayed, ...NotVisible), reads the clock twice per message on each walk, and computes all of a
queue's attributes, the three counts among them, wherever it needs one: a send reads
ContentBasedDeduplication that way, a receive checks each message's retention that way (moto's
`get_queue_attributes`, three times a message), and
GetQueueAttributes for one name computes them three times. So a send to a queue of n messages
costs three walks of n, and a burst that fills a queue costs n² clock reads: the largest single
cost of a burst locally (39% of the server's time in a 3,000-file burst, most of it in sends)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from jobline_local.adaptations.patching import replace


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


def adapt_sqs_atomic_queue_changes() -> None:
    """A standard queue delivers every message at least once (SQS developer guide, "Amazon SQS
    standard queues": at-least-once delivery,
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/standard-queues.html).
    moto 5.2.5 appends a sent message under the queue's lock, but a delete rebuilds the queue's
    list without it: a message sent between the rebuild's walk and its assignment is lost (2 of
    10,000 files in a burst never reached their trigger). A receive also moves messages past
    maxReceiveCount to the dead-letter queue by removing them from the list a delete may be
    walking, which then skips a message. Here deletes, receives and purges hold the queue's lock
    too (a receive's long poll waits on it, releasing it while it waits)."""
    from moto.sqs.models import Queue, SQSBackend

    moto_delete = Queue.delete_message
    moto_receive = SQSBackend.receive_message
    moto_purge = SQSBackend.purge_queue

    def delete_message(self: Any, receipt_handle: str) -> None:
        with self._messages_lock:
            moto_delete(self, receipt_handle)

    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        with self.get_queue(queue_name)._messages_lock:
            return moto_receive(self, queue_name, *args, **kwargs)

    def purge_queue(self: Any, queue_name: str) -> None:
        with self.get_queue(queue_name)._messages_lock:
            moto_purge(self, queue_name)

    replace(Queue, "delete_message", delete_message)
    replace(SQSBackend, "receive_message", receive_message)
    replace(SQSBackend, "purge_queue", purge_queue)
