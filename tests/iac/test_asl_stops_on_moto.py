"""A stopped Glue run or processing job ends the run STOPPED on the real definition, executed by
moto's Step Functions engine, as jobline.status says (before, the definition retried it). The
fixtures are the integration suite's; only how the backend job ends differs."""

from __future__ import annotations

from typing import Any

import pytest

from jobline_local import adaptations
from tests.integration.test_backends_state_machine import Script, deps_for, run_to_end, start

pytestmark = pytest.mark.integration


def test_a_stopped_glue_run_ends_the_run_stopped_with_attempts_left(backends: dict[str, Any], script: Script) -> None:
    def stopped(job: Any, run: Any) -> None:
        script.glue_job_run(job, run)
        run.status, run.error_message = "STOPPED", None

    adaptations.set_hooks(glue_job_run=stopped)
    deps = deps_for(backends, script, "glue-etl", retry={"attempts": 3, "interval_seconds": 0})
    execution, row = run_to_end(backends, deps, start(deps))

    assert execution["status"] == "FAILED"
    assert (row["status"], row["reason"], row["attempt"]) == ("STOPPED", "Stopped by user", 1)
    assert len(script.glue) == 1


def test_a_stopped_processing_job_ends_the_run_stopped_with_attempts_left(
    backends: dict[str, Any], script: Script
) -> None:
    def stopped(job: Any) -> None:
        script.processing_job(job)
        job.processing_job_status, job.failure_reason = "Stopped", None

    adaptations.set_hooks(processing_job=stopped)
    deps = deps_for(backends, script, "clean-data", retry={"attempts": 3, "interval_seconds": 0})
    execution, row = run_to_end(backends, deps, start(deps))

    assert execution["status"] == "FAILED"
    assert (row["status"], row["reason"], row["attempt"]) == ("STOPPED", "Stopped by user", 1)
    assert len(script.processing) == 1
