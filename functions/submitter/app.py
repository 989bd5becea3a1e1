"""Messages of the submit queues (one per backend submit API) -> each attempt's backend job,
submitted once at the API's rate (jobline.submit). Partial batch responses: a message that cannot
be submitted yet (no capacity left in this invocation, a throttle, a server error) goes back to its
queue alone. A malformed message is rejected (logged, counted, parked in the event DLQ), as is an
invocation that is not an SQS batch."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from jobline import intake
from jobline.deps import get_deps
from jobline.errors import RejectedInput
from jobline.observability import logger, metrics, tracer
from jobline.submit import Submitter, process_message

# Time kept back from the invocation's end: the submit call, the row write and the log line after it.
SAFETY_MARGIN_SECONDS = 5.0


def record_handler(record: SqsRecordModel, lambda_context: LambdaContext) -> str:
    deps = get_deps()
    submitter = Submitter(deps.table, deps.client, deps.settings)

    def time_left() -> float:
        return lambda_context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS

    try:
        return process_message(submitter, record.body, time_left, record.receiptHandle).value
    except (ValidationError, RejectedInput) as error:
        intake.reject(error, record.body, "submit", deps)
        return "rejected"


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    return intake.sqs_batch(event, context, "submit", record_handler)
