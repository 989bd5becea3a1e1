"""Fan-out queue messages (one item each) -> one run each, once (jobline.fanouts.FanoutWorker).
Partial batch responses: an AWS error fails that message alone, and SQS redelivers it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobline import intake
from jobline.deps import get_deps
from jobline.fanouts import FanoutWorker
from jobline.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Per invocation: each fan-out's state read once per batch; no run started in the last seconds.
    worker = FanoutWorker(get_deps(), lambda: context.get_remaining_time_in_millis() / 1000)

    def record_handler(record: Any) -> str:
        return worker.start(record.body)

    return intake.sqs_batch(event, context, "fanout", record_handler)
