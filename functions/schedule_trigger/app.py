"""An EventBridge Scheduler invocation -> one run of the scheduled job."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from jobline import intake, triggers
from jobline.deps import get_deps
from jobline.errors import RejectedInput
from jobline.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps = get_deps()
    try:
        parsed = parse(event=event, model=triggers.ScheduleInput)
        request = triggers.from_schedule(parsed, event, deps.catalog)
    except (ValidationError, RejectedInput) as error:
        return {"runs": [], "rejected": [intake.reject(error, event, "schedule", deps)]}
    return intake.start_all([request], deps, "schedule", event)
