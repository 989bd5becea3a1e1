"""Backend job state change events (Batch, Batch service jobs, SageMaker, Glue) -> the run row
moves forward, never back; a service job's terminal event resumes its waiting execution.

Any input is handled: what is not a state change jobline consumes is rejected (logged, counted,
parked in the event DLQ). A row that stays contended for the whole invocation is the one error
raised on purpose: Lambda's async retries redeliver the event later, then park it in the DLQ."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from jobline import intake
from jobline.deps import get_deps
from jobline.errors import RejectedInput, RowContended
from jobline.observability import count, logger, metrics, tracer
from jobline.state_changes import apply_state_change, parse_event

# Time kept back from the invocation's end: the resume call, the log line and the metric after it.
SAFETY_MARGIN_SECONDS = 5.0


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    deps = get_deps()

    def time_left() -> float:
        return context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS

    try:
        parsed = parse_event(event)
        outcome = apply_state_change(parsed, deps.table, deps.client("glue"), deps.client("stepfunctions"), time_left)
    except (ValidationError, RejectedInput) as error:
        return {"rejected": intake.reject(error, event, "state-change", deps)}
    except RowContended as error:
        logger.warning("state change deferred: run row contended", extra={"reason": str(error)})
        count("StateChanges", Outcome="contended")
        raise
    detail_type = event.get("detail-type")
    logger.info("state change", extra={"detail_type": detail_type, "outcome": str(outcome)})
    count("StateChanges", Outcome=outcome.effect.value)
    return {"outcome": str(outcome)}
