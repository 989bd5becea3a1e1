"""jobline paths that send a request no integration or unit test sends (run only by
test_contract_jobline_requests.py, with the contracts installed): an operator stopping a Batch
service job run (TerminateServiceJob) and the reconciler describing a Glue run (GetJobRuns).
Each run is started as a trigger starts it and its attempt submitted by the real submitter
(tests.unit.submitting's stack on moto)."""

from __future__ import annotations

import pytest

from jobline.deps import Deps
from jobline.operations import Operations
from jobline.reconciler import describe_backend
from jobline.submit import Outcome, process_message
from tests.unit.submitting import Stack, stack, time_left

__all__ = ["stack"]


def submitted(stack: Stack, job: str) -> str:
    """A run of `job` whose first attempt the submitter has submitted."""
    run_id = stack.start(job)
    assert process_message(stack.submitter(), stack.message(run_id), time_left()) == Outcome.SUBMITTED
    return run_id


@pytest.fixture
def deps(stack: Stack) -> Deps:
    return Deps.build(stack.settings, stack.catalog, session=stack.session)


def test_stopping_a_service_job_run_terminates_its_job(stack: Stack, deps: Deps) -> None:
    run_id = submitted(stack, "train-model")
    job_id = stack.row(run_id)["attempts"]["1"]["backend_job_id"]
    result = Operations(deps).stop_runs([run_id])
    assert [s["terminated_backend_job"] for s in result["stopped"]] == [job_id]


def test_the_reconciler_finds_a_glue_run(stack: Stack, deps: Deps) -> None:
    run_id = submitted(stack, "glue-etl")
    event = describe_backend(stack.row(run_id), deps)
    assert event is not None
    assert event.detail.jobRunId == stack.row(run_id)["attempts"]["1"]["backend_job_id"]
