"""Fan-out requests (a manifest rule's delivery, a `{"job", "items"|"manifest"}` message, a
continuation) -> `FANOUT#` once, the manifest read line by line, each good item queued for its run
(jobline.fanouts). One message a batch: reading may take the whole invocation, and a reader out of
time queues its own continuation. Bad input is rejected into the event DLQ; AWS errors fail the
message, and SQS redelivers it (the reader goes on from its last checkpoint)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobline import intake
from jobline.deps import get_deps
from jobline.fanouts import FanoutReader
from jobline.observability import logger, metrics, tracer


def record_handler(record: Any, lambda_context: LambdaContext) -> dict[str, Any]:
    reader = FanoutReader(get_deps(), lambda: lambda_context.get_remaining_time_in_millis() / 1000)
    return reader.handle(record.body, record.messageId)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return intake.sqs_batch(event, context, "fanout", record_handler)
