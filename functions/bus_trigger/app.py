"""An event on the job bus: the generated rule of one job's bus trigger queued it in the bus intake
queue; each delivery -> its run."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobline import intake, triggers
from jobline.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return intake.handle_queued(event, context, "bus", lambda delivery, deps: triggers.from_bus(delivery, deps.catalog))
