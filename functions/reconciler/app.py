"""Every few minutes: heal runs whose state change events were lost."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobline.deps import get_deps
from jobline.observability import count, logger, metrics, tracer
from jobline.reconciler import CUT_SHORT, ERROR, UNCHANGED, reconcile


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Runs not updated for Settings.reconcile_after_seconds, while the invocation has time.
    outcomes = reconcile(get_deps(), time_left=lambda: context.get_remaining_time_in_millis() / 1000)
    cut_short = outcomes.pop(CUT_SHORT, None)
    failed = {run_id: outcome for run_id, outcome in outcomes.items() if outcome.startswith(ERROR)}
    healed = {run_id: outcome for run_id, outcome in outcomes.items() if outcome != UNCHANGED and run_id not in failed}
    for run_id, outcome in healed.items():
        logger.info("run healed", extra={"run_id": run_id, "outcome": outcome})
        count("RunsHealed")
    return {"checked": len(outcomes), "healed": healed, "failed": failed, "cut_short": cut_short}
