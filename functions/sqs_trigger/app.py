"""Messages on the trigger queue -> one run each, or a fan-out (`{"job", "items"|"manifest"}`, handed
to the fan-out function). Partial batch responses: a message that is
malformed or names an unknown job fails alone (however many others fail with it), is retried by
SQS and ends in its DLQ; a message the invocation has no time left for goes back unstarted. An
invocation that is not an SQS batch at all is parked in the event DLQ."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from jobline import fanouts, intake, triggers
from jobline.deps import get_deps
from jobline.errors import MalformedEvent, RejectedInput
from jobline.observability import count, logger, metrics, tracer


def record_handler(record: SqsRecordModel) -> str:
    deps = get_deps()
    try:
        if fanouts.is_fanout_message(body := _json(record.body)):
            return fanouts.request(body, f"sqs-message:{record.messageId}", deps)
        message = triggers.SqsJobMessage.model_validate_json(record.body)
        intake.require_unicode(message.model_dump())
        request = triggers.from_sqs(record, message, deps.catalog)
        started = deps.starter.start(request)
    except (ValidationError, RejectedInput) as error:
        code = error.code if isinstance(error, RejectedInput) else MalformedEvent.code
        logger.warning(
            "sqs message rejected; SQS redrives it to the DLQ after maxReceiveCount",
            extra={"message_id": record.messageId, "code": code, "reason": str(error)[: intake.REASON_LIMIT]},
        )
        count("RejectedTriggers", Source="sqs", Code=code)
        raise
    logger.info("sqs run", extra={"run_id": started.run_id, "new_run": started.created})
    return started.run_id


def _json(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None  # not JSON: SqsJobMessage says so


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    return intake.sqs_batch(event, context, "sqs", record_handler, within_time=True)
