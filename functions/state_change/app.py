"""`Batch Job State Change` events -> the run row moves forward (never back)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from jobline import intake
from jobline.deps import get_deps
from jobline.observability import count, logger, metrics, tracer
from jobline.state_changes import BatchJobStateChange, apply_batch_event
from pydantic import ValidationError


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps = get_deps()
    try:
        parsed = parse(event=event, model=BatchJobStateChange)
    except ValidationError as error:
        return {"rejected": intake.reject(error, event, "state-change", deps)}
    outcome = apply_batch_event(parsed, deps.table)
    logger.info(
        "state change", extra={"job_id": parsed.detail.jobId, "status": parsed.detail.status, "outcome": outcome}
    )
    count("StateChanges", Outcome=outcome.split(":")[0])
    return {"outcome": outcome}
