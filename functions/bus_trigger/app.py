"""An event on the job bus -> runs of every job whose bus trigger pattern matches it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobline import intake, triggers
from jobline.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return intake.handle(
        event, "bus", lambda deps: triggers.from_bus(parse(event=event, model=EventBridgeModel), event, deps.catalog)
    )
