"""S3 `Object Created` (via EventBridge): the generated rule of one job's S3 trigger queued it in
the S3 intake queue; each delivery -> its run."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobline import intake, triggers
from jobline.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return intake.handle_queued(event, context, "s3", lambda delivery, deps: triggers.from_s3(delivery, deps.catalog))
