"""The local SQS checks a received message's retention without computing the queue's attributes
(jobline_local.adaptations.sqs): a speed change, so what is received is what moto receives."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs.models import Queue, sqs_backends

from jobline_local.adaptations import changed_by, install

ENTRY = "jobline_local.adaptations.sqs:adapt_sqs_retention_check"


@pytest.fixture
def sqs() -> Any:
    install()
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def test_replaces_the_retention_check() -> None:
    install()
    assert changed_by[ENTRY] == ["is_message_valid_based_on_retention_period"]


def test_receives_without_counting_the_queue(sqs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for i in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))

    def counted(self: Any) -> Any:
        raise AssertionError("the receive computed the queue's attributes")

    monkeypatch.setattr(Queue, "attributes", property(counted))
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    assert sorted(bodies) == ["0", "1", "2", "3", "4"]


def test_a_message_past_the_queue_s_retention_is_not_received(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="old")
    (message,) = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues["q"]._messages
    message.sent_timestamp -= 61_000  # sent 61 s ago
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
