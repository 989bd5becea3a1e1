"""Backend job state change events (Batch, Batch service jobs, SageMaker, Glue) -> the run row
moves forward, never back; a service job's terminal event resumes its waiting execution."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from jobline import intake
from jobline.deps import get_deps
from jobline.errors import MalformedEvent
from jobline.observability import count, logger, metrics, tracer
from jobline.state_changes import apply_state_change, model_for


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps = get_deps()
    try:
        parsed = parse(event=event, model=model_for(event))
    except KeyError:
        error = MalformedEvent(f"detail-type {event.get('detail-type')!r} is not a job state change jobline consumes")
        return {"rejected": intake.reject(error, event, "state-change", deps)}
    except ValidationError as error:
        return {"rejected": intake.reject(error, event, "state-change", deps)}
    outcome = apply_state_change(parsed, deps.table, deps.client("glue"), deps.client("stepfunctions"))
    logger.info("state change", extra={"detail_type": event.get("detail-type"), "outcome": str(outcome)})
    count("StateChanges", Outcome=outcome.effect.value)
    return {"outcome": str(outcome)}
