"""Backend job state change events (Batch, Batch service jobs, SageMaker, Glue) -> the run row
moves forward, never back, with one conditional write; an attempt that ended answers the
execution waiting on its task token.

Any input is handled: what is not a state change jobline consumes is rejected (logged, counted,
parked in the event DLQ). Errors raised on purpose: a row changed by concurrent writers round
after round, and a task token answer AWS refused for a passing reason (throttling): Lambda's
async retries deliver the event again (the write is then a no-op and the answer is repeated),
then park it in the DLQ."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from jobline import intake
from jobline.deps import get_deps
from jobline.errors import RejectedInput, RowContended
from jobline.observability import count, logger, metrics, tracer
from jobline.state_changes import apply_state_change, parse_event


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    deps = get_deps()
    try:
        parsed = parse_event(event)
        outcome = apply_state_change(parsed, deps.table, deps.client("glue"), deps.client("stepfunctions"))
    except (ValidationError, RejectedInput) as error:
        return {"rejected": intake.reject(error, event, "state-change", deps)}
    except RowContended as error:
        logger.warning("state change deferred: run row contended", extra={"reason": str(error)})
        count("StateChanges", Outcome="contended")
        raise
    detail_type = event.get("detail-type")
    logger.info("state change", extra={"detail_type": detail_type, "outcome": str(outcome)})
    count("StateChanges", Outcome=outcome.effect.value)
    if outcome.answered:
        count("AttemptsAnswered")
    return {"outcome": str(outcome)}
