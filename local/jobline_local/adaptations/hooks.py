"""Where adapted moto code hands work to the local stack. Each hook is None until the stack
(jobline_local.stack) or a test sets it; without a hook, moto's own behaviour is kept (a service
job, which moto does not have, then stays SUBMITTED: nothing runs it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#  lambda_target(rule_arn, target, payload): an EventBridge rule delivers `payload` to a Lambda target
#  lambda_invoke(function_arn, payload, invocation_type) -> (payload, function error, log tail) or None
#  batch_job(job): a submitted moto Batch Job, to be run by the local compute
#  processing_job(job): a new moto FakeProcessingJob (InProgress), to run; StopProcessingJob sets "Stopping"
#  service_job(job): a new ServiceJob (SUBMITTED), to run; TerminateServiceJob sets job.terminate_reason
#  glue_job_run(job, run): a new moto FakeJobRun (STARTING) of the FakeJob; BatchStopJobRun sets "STOPPING"
#  engine_seconds(seconds) -> real seconds: a Retry delay or Wait of the ASL engine on the local clock
hooks: dict[str, Callable[..., Any] | None] = {
    "lambda_target": None,
    "lambda_invoke": None,
    "batch_job": None,
    "processing_job": None,
    "service_job": None,
    "glue_job_run": None,
    "engine_seconds": None,
}


def set_hooks(**new: Callable[..., Any] | None) -> None:
    unknown = set(new) - set(hooks)
    if unknown:
        raise KeyError(f"unknown hooks {sorted(unknown)}")
    hooks.update(new)


def clear_hooks() -> None:
    """Back to moto's own behaviour (the stack stopped)."""
    hooks.update(dict.fromkeys(hooks))
