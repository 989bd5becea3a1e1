"""Run table stream -> concurrency slots released and handed on (jobline.slots): a run with a
slot limit ended, or a run started waiting for a slot. The mapping's filter lets only those
records through; a record that fails is retried from (a partial batch response)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobline import slots
from jobline.deps import get_deps
from jobline.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps = get_deps()
    return slots.process_stream(event, slots.Slots(deps.table, deps.client("stepfunctions")))
