"""SubmitterFunction as Lambda invokes it with a batch of submit queue messages: partial batch
responses, malformed messages rejected visibly, an invocation that is not a batch handled."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from jobline import deps as deps_module
from jobline import settings as settings_module
from tests.faults.injection import Injector, Rule, installed
from tests.faults.redelivery import sqs_record
from tests.unit.conftest import LambdaContext, load_handler
from tests.unit.submitting import Stack, stack

__all__ = ["stack"]


@pytest.fixture
def handler(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """The function's module, its settings from the environment as the template sets them."""
    for name, value in stack.settings.model_dump(mode="json").items():
        monkeypatch.setenv(name.upper(), str(value))
    monkeypatch.setenv("CATALOG_PATH", str(settings_module.PACKAGED_CATALOG))
    settings_module.get_settings.cache_clear()
    deps_module.get_deps.cache_clear()
    yield load_handler("submitter").handler
    settings_module.get_settings.cache_clear()
    deps_module.get_deps.cache_clear()


def dead_letters(stack: Stack) -> list[dict[str, object]]:
    sqs = stack.client("sqs")
    found = sqs.receive_message(QueueUrl=stack.settings.event_dlq_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in found]


def test_a_batch_submits_what_it_can_and_hands_back_only_what_must_wait(stack: Stack, handler: object) -> None:
    ready, throttled = stack.start("word-count"), stack.start("word-count")
    # The throttled one as Lambda's poller receives it: its receipt lets the submitter hand it back.
    ready_body, throttled_body = stack.message(ready), stack.message(throttled)
    sqs, queue = stack.client("sqs"), stack.settings.submit_batch_job_queue_url
    sqs.send_message(QueueUrl=queue, MessageBody=throttled_body)
    (received,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1)["Messages"]
    records = [
        sqs_record("ready", ready_body, 1),
        {**sqs_record("throttled", received["Body"], 1), "receiptHandle": received["ReceiptHandle"]},
        sqs_record("malformed", json.dumps({"run_id": ready, "token": "t"}), 1),
    ]
    # The second SubmitJob is throttled past the SDK's retries (another tool in the account).
    injector = Injector(rules=[Rule("batch", "SubmitJob", 2, "throttle")])
    with installed(injector), injector.handling():
        response = handler({"Records": records}, LambdaContext())  # type: ignore[operator]
    assert response == {"batchItemFailures": [{"itemIdentifier": "throttled"}]}
    # It comes back in seconds, not after the queue's visibility timeout.
    (handed_back,) = injector.made("sqs", "ChangeMessageVisibility")
    assert handed_back["ReceiptHandle"] == received["ReceiptHandle"]
    assert 5 <= handed_back["VisibilityTimeout"] <= 10
    assert [job["jobName"] for job in stack.batch_jobs(ready)] == [f"{ready}-1"]
    assert stack.batch_jobs(throttled) == []
    (parked,) = dead_letters(stack)
    assert (parked["source"], parked["code"]) == ("submit", "MalformedEvent")
    assert "request" in str(parked["reason"])


def test_an_invocation_that_is_not_an_sqs_batch_is_rejected_not_raised(stack: Stack, handler: object) -> None:
    response = handler({"detail": "not a batch"}, LambdaContext())  # type: ignore[operator]
    assert response["batchItemFailures"] == []
    assert response["rejected"]["code"] == "MalformedEvent"
    assert len(dead_letters(stack)) == 1
