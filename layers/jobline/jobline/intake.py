"""Where trigger handlers hand over: start the requested runs, or reject the input visibly."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from jobline.deps import Deps, get_deps
from jobline.errors import MalformedEvent, RejectedInput
from jobline.observability import count, logger
from jobline.triggers import RunRequest

# A DLQ record fits any SQS queue (messages of at most 256 KiB unless raised:
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html)
# whatever was refused: a longer event is kept as the start of its JSON text, a reason cut short.
DLQ_EVENT_LIMIT_CHARS = 96 * 1024
DLQ_REASON_LIMIT_CHARS = 2048


def handle(event: dict[str, Any], source: str, requests: Callable[[Deps], list[RunRequest]]) -> dict[str, Any]:
    """A trigger handler's whole job: the requests its event makes (parsing it on the way), each
    started, or the event rejected visibly with what was wrong."""
    deps = get_deps()
    try:
        wanted = requests(deps)
    except (ValidationError, RejectedInput) as error:
        return {"runs": [], "rejected": [reject(error, event, source, deps)]}
    return start_all(wanted, deps, source, event)


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
    reason = str(error)[:DLQ_REASON_LIMIT_CHARS]
    if len(text := json.dumps(payload, default=str)) > DLQ_EVENT_LIMIT_CHARS:
        payload = {"truncated_json": text[:DLQ_EVENT_LIMIT_CHARS]}
    logger.warning("trigger rejected", extra={"code": code, "reason": reason, "source": source, "job": job})
    count("RejectedTriggers", Source=source, Code=code)
    deps.client("sqs").send_message(
        QueueUrl=deps.settings.event_dlq_url,
        MessageBody=json.dumps(
            {"source": source, "code": code, "reason": reason, "job": job, "event": payload}, default=str
        ),
        MessageAttributes={
            "code": {"DataType": "String", "StringValue": code},
            "source": {"DataType": "String", "StringValue": source},
        },
    )
    return {"code": code, "reason": reason, "job": job}


def _validation_summary(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in error.errors()[:5])
