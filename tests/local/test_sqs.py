"""The local SQS computes a queue's attributes when read and each count in one walk, so a send or a
receive's retention check counts nothing (speed changes: what is received and answered is what moto
receives and answers), and changes a queue's messages under its lock (jobline_local.adaptations.sqs)."""

from __future__ import annotations

import json
import threading
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs.models import Queue, sqs_backends

from jobline_local.adaptations import changed_by, install, originals


@pytest.fixture
def sqs() -> Any:
    install()
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def test_receives_without_counting_the_queue(sqs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for i in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))

    def counted(self: Any) -> Any:
        raise AssertionError("the receive computed the queue's attributes")

    # Its retention check reads one attribute (moto's get_queue_attributes), none of the counts.
    for name in ("approximate_number_of_messages_delayed", "approximate_number_of_messages_not_visible"):
        monkeypatch.setattr(Queue, name, property(counted))
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    assert sorted(bodies) == ["0", "1", "2", "3", "4"]


def test_a_message_past_the_queue_s_retention_is_not_received(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="old")
    (message,) = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues["q"]._messages
    message.sent_timestamp -= 61_000  # sent 61 s ago
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


WALKS = "jobline_local.adaptations.sqs:adapt_sqs_queue_walks"


def test_replaces_the_queue_s_attributes_and_counts() -> None:
    install()
    assert changed_by[WALKS] == [
        "approximate_number_of_messages_delayed",
        "approximate_number_of_messages_not_visible",
        "attributes",
        "messages",
    ]


def moto_s_own(queue: Any, name: str) -> Any:
    return originals[(Queue, name)].fget(queue)


@pytest.mark.parametrize(
    "attributes",
    [
        {},
        {"FifoQueue": "true", "ContentBasedDeduplication": "true"},
        {"KmsMasterKeyId": "alias/aws/sqs", "DelaySeconds": "5"},
        {"Policy": json.dumps({"Version": "2012-10-17", "Statement": []})},
    ],
    ids=["standard", "fifo", "kms", "policy"],
)
def test_a_queue_s_attributes_are_moto_s_own(sqs: Any, attributes: dict[str, str]) -> None:
    fifo = "FifoQueue" in attributes
    name = "q.fifo" if fifo else "q"
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    dlq = sqs.create_queue(QueueName="dlq.fifo" if fifo else "dlq", Attributes={"FifoQueue": "true"} if fifo else {})
    dlq = dlq["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": redrive})
    extra = {"MessageGroupId": "g"} if fifo else {}
    for i in range(4):
        sqs.send_message(QueueUrl=url, MessageBody=str(i), **extra)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=60)
    queue = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues[name]
    own = moto_s_own(queue, "attributes")
    assert list(queue.attributes) == list(own)
    assert dict(queue.attributes) == own
    assert "Policy" in queue.attributes
    assert "Nope" not in queue.attributes
    assert queue.attributes.get("Nope") is None
    answered = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert json.loads(answered["RedrivePolicy"])["deadLetterTargetArn"] == dlq_arn


def test_the_counts_are_moto_s_own(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for i in range(6):
        sqs.send_message(QueueUrl=url, MessageBody=str(i), DelaySeconds=60 if i < 2 else 0)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=3, VisibilityTimeout=60)
    queue = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues["q"]
    counts = {
        name: getattr(queue, name)
        for name in (
            "approximate_number_of_messages",
            "approximate_number_of_messages_delayed",
            "approximate_number_of_messages_not_visible",
        )
    }
    assert counts == {
        "approximate_number_of_messages": 1,
        "approximate_number_of_messages_delayed": 2,
        "approximate_number_of_messages_not_visible": 3,
    }
    assert counts["approximate_number_of_messages"] == len(moto_s_own(queue, "messages"))
    for name in ("approximate_number_of_messages_delayed", "approximate_number_of_messages_not_visible"):
        assert counts[name] == moto_s_own(queue, name), name
    assert queue.messages == moto_s_own(queue, "messages")


def test_a_send_reads_one_attribute_and_no_count(sqs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="first")

    def counted(self: Any) -> Any:
        raise AssertionError("the send counted the queue's messages")

    for name in ("approximate_number_of_messages_delayed", "approximate_number_of_messages_not_visible"):
        monkeypatch.setattr(Queue, name, property(counted))
    monkeypatch.setattr(Queue, "messages", property(counted))
    sqs.send_message(QueueUrl=url, MessageBody="second")
    assert len(sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues["q"]._messages) == 2


ATOMIC = "jobline_local.adaptations.sqs:adapt_sqs_atomic_queue_changes"


def test_replaces_the_queue_s_changes() -> None:
    install()
    assert changed_by[ATOMIC] == ["delete_message", "purge_queue", "receive_message"]


def waits_for_the_queue_s_lock(queue: Any, call: Any) -> bool:
    """True when `call` could not finish while another thread held the queue's lock."""
    done = threading.Event()
    with queue._messages_lock:
        worker = threading.Thread(target=lambda: (call(), done.set()))
        worker.start()
        blocked = not done.wait(0.3)
    worker.join(5)
    return blocked and done.is_set()


def test_a_delete_a_receive_and_a_purge_change_the_queue_under_its_lock(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    queue = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues["q"]
    received: list[Any] = []
    assert waits_for_the_queue_s_lock(queue, lambda: received.extend(sqs.receive_message(QueueUrl=url)["Messages"]))
    handle = received[0]["ReceiptHandle"]
    assert waits_for_the_queue_s_lock(queue, lambda: sqs.delete_message(QueueUrl=url, ReceiptHandle=handle))
    assert waits_for_the_queue_s_lock(queue, lambda: sqs.purge_queue(QueueUrl=url))
    assert queue._messages == []


def test_no_message_is_lost_while_others_are_received_and_deleted(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    sent, bodies, stop = 400, set(), threading.Event()

    def send(start: int) -> None:
        for i in range(start, sent, 4):
            sqs.send_message(QueueUrl=url, MessageBody=str(i))

    def consume() -> None:
        while not stop.is_set() or len(bodies) < sent:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
            if not messages and stop.is_set():
                return
            for message in messages:
                bodies.add(message["Body"])
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    consumers = [threading.Thread(target=consume) for _ in range(2)]
    senders = [threading.Thread(target=send, args=(k,)) for k in range(4)]
    for thread in consumers + senders:
        thread.start()
    for thread in senders:
        thread.join()
    stop.set()
    for thread in consumers:
        thread.join(60)
    assert bodies == {str(i) for i in range(sent)}
