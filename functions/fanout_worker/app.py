"""Fan-out queue messages (one item each) -> one run each, once (jobline.fanouts.FanoutWorker).
Partial batch responses: an AWS error fails that message alone, and SQS redelivers it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobline.deps import get_deps
from jobline.fanouts import FanoutWorker
from jobline.observability import logger, metrics, tracer

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Per invocation: each fan-out's state read once per batch; no run started in the last seconds.
    worker = FanoutWorker(get_deps(), lambda: context.get_remaining_time_in_millis() / 1000)

    def record_handler(record: SQSRecord) -> str:
        return worker.start(record.body)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
