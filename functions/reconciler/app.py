"""Every few minutes: heal runs whose state change events were lost."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobline.deps import get_deps
from jobline.observability import count, logger, metrics, tracer
from jobline.reconciler import reconcile


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    older_than = timedelta(seconds=int(os.environ.get("RECONCILE_AFTER_SECONDS", "900")))
    outcomes = reconcile(get_deps(), older_than)
    healed = {run_id: outcome for run_id, outcome in outcomes.items() if outcome != "unchanged"}
    for run_id, outcome in healed.items():
        logger.info("run healed", extra={"run_id": run_id, "outcome": outcome})
        count("RunsHealed")
    return {"checked": len(outcomes), "healed": healed}
