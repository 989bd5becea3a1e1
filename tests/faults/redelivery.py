"""How AWS hands an event to a function again after the function failed, one model per source.

- Async invokes (Scheduler, the reconciler's schedule): 1 + 2 retries
  (template.yaml `EventInvokeConfig.MaximumRetryAttempts: 2`), then the on-failure destination, the
  event DLQ, gets the Lambda destination record with the original payload ("Asynchronous
  invocation", Lambda developer guide).
- SQS event source (the trigger queue, and the intake queues the S3 and bus rules send to): a
  failed batch item (ReportBatchItemFailures) or every item of a failed invocation becomes visible
  again; at receive count `maxReceiveCount` SQS moves the message to the queue's DLQ (the trigger
  queue's 5, the fewest: the intake queues allow 10).
- DynamoDB stream (notify): the batch is retried from the first reported failure (or whole, on a
  function error) up to `MaximumRetryAttempts` (10), then the on-failure destination gets a record
  naming the batch's range (not the records).
- The API: a synchronous call; the operator's client (CLI, SDK) repeats a request that ended in a
  5xx or a timeout with the same client token, 3 attempts in all (the SDKs' standard retry mode).
A handler's exception that is not an injected fault (nor caused by one) is "unhandled": outside
the model, and counted as a defect.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.faults.injection import Injector, injected
from tests.unit.conftest import LambdaContext

ASYNC_ATTEMPTS = 3
SQS_MAX_RECEIVE_COUNT = 5
STREAM_MAX_RETRIES = 10
API_ATTEMPTS = 3


@dataclass
class Ledger:
    """What the deliveries of one case did."""

    invocations: int = 0
    failed_invocations: int = 0
    unhandled: list[str] = field(default_factory=list)
    parked: list[dict[str, Any]] = field(default_factory=list)  # what reached a DLQ, and why

    def invoke(
        self, injector: Injector, handler: Callable[..., Any], event: Any, context: Any = None
    ) -> tuple[bool, Any]:
        self.invocations += 1
        try:
            with injector.handling():
                return True, handler(event, context or LambdaContext())
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt | SystemExit):
                raise
            self.failed_invocations += 1
            if not injected(error):
                self.unhandled.append(traceback.format_exception_only(error)[0].strip().splitlines()[0][:300])
            return False, None


def deliver_async(ledger: Ledger, injector: Injector, handler: Callable[..., Any], event: dict[str, Any]) -> Any:
    """An async invoke: the result of the first successful attempt, or None once parked."""
    for _ in range(ASYNC_ATTEMPTS):
        ok, result = ledger.invoke(injector, handler, event)
        if ok:
            return result
    ledger.parked.append({"source": "async", "condition": "RetriesExhausted", "requestPayload": event})
    return None


def sqs_record(message_id: str, body: str, receive_count: int) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"receipt-{message_id}-{receive_count}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1763683200000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1763683200000",
        },
        "messageAttributes": {},
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jobline-trigger-queue",
        "awsRegion": "us-east-1",
    }


def deliver_sqs(
    ledger: Ledger, injector: Injector, handler: Callable[..., Any], messages: dict[str, str], batch_size: int = 10
) -> None:
    """Messages (id -> body) received in batches until each is deleted or moved to the DLQ."""
    receives = dict.fromkeys(messages, 0)
    waiting = list(messages)
    while waiting:
        batch, waiting = waiting[:batch_size], waiting[batch_size:]
        for message_id in batch:
            receives[message_id] += 1
        records = [sqs_record(m, messages[m], receives[m]) for m in batch]
        ok, result = ledger.invoke(injector, handler, {"Records": records})
        failed = set(batch) if not ok else {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
        for message_id in batch:
            if message_id not in failed:
                continue
            if receives[message_id] >= SQS_MAX_RECEIVE_COUNT:
                ledger.parked.append({"source": "sqs", "messageId": message_id, "body": messages[message_id]})
            else:
                waiting.append(message_id)


def deliver_stream(
    ledger: Ledger, injector: Injector, handler: Callable[..., Any], records: list[dict[str, Any]]
) -> None:
    """Stream records in order, retried from the first failure, then past it to the on-failure record."""
    position, retries = 0, 0
    while position < len(records):
        batch = records[position:]
        ok, result = ledger.invoke(injector, handler, {"Records": batch})
        failures = [f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])] if ok else None
        if failures == []:
            return
        first = position
        if failures:
            numbers = [r["dynamodb"]["SequenceNumber"] for r in batch]
            first = position + numbers.index(failures[0])
        if first > position:
            position, retries = first, 0
            continue
        retries += 1
        if retries > STREAM_MAX_RETRIES:
            ranges = [r["dynamodb"]["SequenceNumber"] for r in batch]
            ledger.parked.append({"source": "stream", "condition": "RetryAttemptsExhausted", "sequence": ranges})
            return


def call_api(ledger: Ledger, injector: Injector, request: Callable[[], Any]) -> Any:
    """A synchronous operator request, repeated as a client repeats a 5xx or a timeout."""
    for _ in range(API_ATTEMPTS):
        ok, result = ledger.invoke(injector, lambda _event, _context: request(), None)
        if ok:
            return result
    ledger.parked.append({"source": "api", "condition": "client gave up"})
    return None


def body(event: Any) -> str:
    return json.dumps(event, separators=(",", ":"))
