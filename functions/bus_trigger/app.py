"""An event on the job bus, delivered by the generated rule of one job's bus trigger -> its run."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobline import intake, triggers
from jobline.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return intake.handle(event, "bus", lambda deps: triggers.from_bus(event, deps.catalog))
