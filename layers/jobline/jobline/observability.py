"""Powertools Logger, Metrics and Tracer shared by every function (service name from env).

The Tracer exists only when tracing is on: Powertools' Tracer imports the X-Ray SDK (and patches
botocore) even when disabled, a tenth of a second of every cold start. With POWERTOOLS_TRACE_DISABLED
true, or outside Lambda (Powertools' own rule), `tracer.capture_lambda_handler` leaves the handler
as it is and the SDK is never imported. Lambda's own segments (Tracing: Active) need no SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.tracing.tracer import Tracer

logger = Logger()
metrics = Metrics()


class Untraced:
    """What handlers decorate with when tracing is off: the handler itself, unwrapped."""

    def capture_lambda_handler(self, lambda_handler: Callable[..., Any] | None = None, **_: Any) -> Any:
        if lambda_handler is None:  # used as @tracer.capture_lambda_handler(capture_response=...)
            return lambda handler: handler
        return lambda_handler


def make_tracer() -> Tracer | Untraced:
    return Untraced() if Tracer._is_tracer_disabled() else Tracer()


tracer = make_tracer()


def count(name: str, **dimensions: str) -> None:
    """A one-off count with its own dimensions (Metrics' dimensions would apply to every metric)."""
    with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
        for key, value in dimensions.items():
            metric.add_dimension(name=key, value=value)
