"""Run table stream -> a `Run State Change` event on the job bus for every run that became final;
the notification redrive queue -> the events PutEvents refused, sent again."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobline import notifications
from jobline.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return notifications.process(event, notifications.get_notifier())
