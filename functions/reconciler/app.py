"""Every few minutes: heal runs whose state change events were lost."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobline.deps import get_deps
from jobline.observability import count, logger, metrics, tracer
from jobline.reconciler import ERROR, UNCHANGED, reconcile


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcomes = reconcile(get_deps())  # runs not updated for Settings.reconcile_after_seconds
    failed = {run_id: outcome for run_id, outcome in outcomes.items() if outcome.startswith(ERROR)}
    healed = {run_id: outcome for run_id, outcome in outcomes.items() if outcome != UNCHANGED and run_id not in failed}
    for run_id, outcome in healed.items():
        logger.info("run healed", extra={"run_id": run_id, "outcome": outcome})
        count("RunsHealed")
    return {"checked": len(outcomes), "healed": healed, "failed": failed}
