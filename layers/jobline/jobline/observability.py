"""Powertools Logger, Metrics and Tracer shared by every function (service name from env)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

logger = Logger()
metrics = Metrics()
tracer = Tracer()


def count(name: str, **dimensions: str) -> None:
    """A one-off count with its own dimensions (Metrics' dimensions would apply to every metric)."""
    with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
        for key, value in dimensions.items():
            metric.add_dimension(name=key, value=value)
