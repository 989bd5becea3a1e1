"""Where trigger handlers hand over: start the requested runs, or reject the input visibly."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from jobline.budget import StepBudget
from jobline.deps import Deps, get_deps
from jobline.errors import MalformedEvent, RejectedInput
from jobline.observability import count, logger
from jobline.triggers import RunRequest

REASON_LIMIT = 2000  # characters of a rejection's reason kept (a reason may quote the input)
DLQ_MESSAGE_LIMIT = 250_000  # bytes (ASCII): under SQS's 262,144-byte message limit, with room for attributes
# A trigger batch's next record is started only while the invocation has this long left, and twice
# its slowest record so far: the rest go back to the queue (partial batch response) instead of
# into a timeout, which would send back the records already done too, every receive counted.
HAND_BACK_MARGIN_SECONDS = 5.0


class NoTimeLeft(Exception):
    """A record not started because the invocation's time is nearly up: SQS delivers it again."""


def handle(event: Any, source: str, requests: Callable[[Deps], list[RunRequest]]) -> dict[str, Any]:
    """A trigger handler's whole job: the requests its event makes (parsing it on the way), each
    started, or the event rejected visibly with what was wrong."""
    deps = get_deps()
    try:
        if not isinstance(event, dict):
            raise MalformedEvent(f"a {source} event must be a JSON object, got {type(event).__name__}")
        require_unicode(event)
        wanted = requests(deps)
    except (ValidationError, RejectedInput) as error:
        return {"runs": [], "rejected": [reject(error, event, source, deps)]}
    except Exception as error:  # parsing and matching call no AWS API: whatever fails here is the input
        logger.exception("trigger unreadable", extra={"source": source})
        unreadable = MalformedEvent(f"unreadable {source} event: {type(error).__name__}: {error}")
        return {"runs": [], "rejected": [reject(unreadable, event, source, deps)]}
    return start_all(wanted, deps, source, event)


def sqs_batch(
    event: Any, context: Any, source: str, record_handler: Callable[..., Any], *, within_time: bool = False
) -> dict[str, Any]:
    """An SQS event source's invocation: each record through `record_handler`, with a partial batch
    response (every record failing is one too, not a Lambda error); an invocation that is not an SQS
    batch is rejected, not raised. `within_time`: records the invocation has no time left for are
    handed back unstarted (handlers that watch their own time, the submitter's, need not)."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.parser.models import SqsRecordModel

    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) and "messageId" in r for r in records):
        error = MalformedEvent("not an SQS batch: {'Records': [...]}, each record with its messageId")
        return {"batchItemFailures": [], "rejected": reject(error, event, source, get_deps())}
    processor = BatchProcessor(event_type=EventType.SQS, model=SqsRecordModel, raise_on_entire_batch_failure=False)
    if within_time:
        record_handler = _within_time(record_handler, context, source)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


def _within_time(record_handler: Callable[..., Any], context: Any, source: str) -> Callable[..., Any]:
    budget = StepBudget(lambda: context.get_remaining_time_in_millis() / 1000, HAND_BACK_MARGIN_SECONDS)

    @functools.wraps(record_handler)  # keeps its signature: BatchProcessor passes lambda_context if it takes one
    def guarded(record: Any, **kwargs: Any) -> Any:
        if not budget.allows_another():
            left, slowest = budget.left, budget.slowest
            logger.info("record handed back unstarted", extra={"source": source, "seconds_left": round(left, 1)})
            count("RecordsHandedBack", Source=source)
            raise NoTimeLeft(f"{left:.1f} s left in this invocation (slowest record {slowest:.1f} s): handed back")
        return record_handler(record, **kwargs)

    return guarded


def handle_queued(
    event: Any, context: Any, source: str, requests: Callable[[Any, Deps], list[RunRequest]]
) -> dict[str, Any]:
    """A batch from an intake queue: each record's body is a rule's delivery (`{"job", "trigger",
    "event"}`), handled as `handle` handles one. Bad input is rejected (event DLQ) and the record
    done; an AWS error fails that record alone (partial batch response) and SQS delivers it again."""
    handled: list[dict[str, Any]] = []

    def record_handler(record: Any) -> None:
        try:
            delivery = json.loads(record.body)
        except ValueError:
            delivery = record.body  # rejected below as what it is: not a JSON object
        handled.append(handle(delivery, source, lambda deps: requests(delivery, deps)))

    response = sqs_batch(event, context, source, record_handler, within_time=True)
    # Lambda reads only batchItemFailures; the rest is for logs and tests.
    return {
        **response,
        "runs": [r for h in handled for r in h["runs"]],
        "rejected": response.get("rejected", []) + [r for h in handled for r in h["rejected"]],
    }


def require_unicode(value: Any) -> None:
    """Text must be Unicode that can be encoded (JSON's escapes can carry lone surrogates, which no
    AWS API can store or send): refused here, before they reach a row, a hash or a request."""
    try:
        json.dumps(value, ensure_ascii=False, default=str).encode()
    except UnicodeEncodeError as error:
        raise MalformedEvent(f"the event holds text that is not valid Unicode: {error.reason}") from None


def start_all(requests: list[RunRequest], deps: Deps, source: str, payload: Any) -> dict[str, Any]:
    """Start each requested run; a request that is refused is rejected on its own."""
    runs, rejected = [], []
    for request in requests:
        try:
            started = deps.starter.start(request)
        except RejectedInput as error:
            rejected.append(reject(error, payload, source, deps, job=request.job.name))
            continue
        runs.append({"run_id": started.run_id, "job": started.job, "created": started.created})
        logger.info(
            "run created" if started.created else "duplicate trigger: run already exists",
            extra={"run_id": started.run_id, "job": started.job, "trigger": request.trigger.source},
        )
        count("RunsCreated" if started.created else "DuplicateTriggers", Source=source)
    return {"runs": runs, "rejected": rejected}


def reject(error: Exception, payload: Any, source: str, deps: Deps, job: str | None = None) -> dict[str, Any]:
    """Log, count and park a refused input in the event DLQ, with what was wrong and why."""
    if isinstance(error, ValidationError):
        error = MalformedEvent(f"malformed {source} event: {_validation_summary(error)}")
    code = error.code if isinstance(error, RejectedInput) else "Rejected"
    reason = str(error)[:REASON_LIMIT]
    logger.warning("trigger rejected", extra={"code": code, "reason": reason, "source": source, "job": job})
    count("RejectedTriggers", Source=source, Code=code)
    deps.client("sqs").send_message(
        QueueUrl=deps.settings.event_dlq_url,
        MessageBody=dead_letter(source, code, reason, job, payload),
        MessageAttributes={
            "code": {"DataType": "String", "StringValue": code},
            "source": {"DataType": "String", "StringValue": source},
        },
    )
    return {"code": code, "reason": reason, "job": job}


def dead_letter(source: str, code: str, reason: str, job: str | None, payload: Any) -> str:
    """The DLQ record (ASCII JSON: lone surrogates escaped). An event too large for an SQS message
    (256 KiB, https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html)
    keeps its first part, its size and its SHA-256."""
    record: dict[str, Any] = {"source": source, "code": code, "reason": reason, "job": job, "event": payload}
    body = json.dumps(record, default=str)
    if len(body) <= DLQ_MESSAGE_LIMIT:
        return body
    event = json.dumps(payload, default=str)
    record["event"] = None
    record["event_truncated"] = {
        "head": event[: DLQ_MESSAGE_LIMIT // 2],
        "bytes": len(event),
        "sha256": hashlib.sha256(event.encode()).hexdigest(),
    }
    return json.dumps(record)


def _validation_summary(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in error.errors()[:5])
