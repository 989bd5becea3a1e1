"""jobline paths that send a request no integration or unit test sends (run only by
test_contract_jobline_requests.py, with the contracts installed): an operator stopping a Batch
service job run (TerminateServiceJob) and the reconciler describing a Glue run (GetJobRuns)."""

from __future__ import annotations

from typing import Any

from jobline.backends.batch_service import ServiceJobStateChange
from jobline.operations import Operations
from jobline.reconciler import describe_backend
from jobline.state_changes import apply_state_change
from tests.integration.test_backends_state_machine import Script, backends, deps_for, script, start  # noqa: F401
from tests.waiting import wait_until


def test_stopping_a_service_job_run_terminates_its_job(backends: dict[str, Any], script: Script) -> None:  # noqa: F811
    deps = deps_for(backends, script, "train-model")
    run_id = start(deps, "stop-service")
    wait_until(
        lambda: deps.table.get_run(run_id).get("task_token_attempt") == 1,
        timeout=30,
        what="the execution to store its task token",
    )
    (job,) = script.service
    running = {
        "version": "0",
        "id": f"event-{job.job_id}-running",
        "detail-type": "Batch Service Job State Change",
        "source": "aws.batch",
        "account": job.account_id,
        "time": "2026-11-21T00:05:00Z",
        "region": job.region,
        "resources": [job.arn],
        "detail": job.describe(),
    }
    apply_state_change(
        ServiceJobStateChange.model_validate(running), deps.table, deps.client("glue"), deps.client("stepfunctions")
    )
    result = Operations(deps).stop_runs([run_id])
    assert [s["terminated_backend_job"] for s in result["stopped"]] == [script.service[0].job_id]


def test_the_reconciler_finds_a_glue_run(backends: dict[str, Any], script: Script) -> None:  # noqa: F811
    script.outcomes = {1: "hold"}
    deps = deps_for(backends, script, "glue-etl")
    run_id = start(deps, "reconcile-glue")
    row = wait_until(
        lambda: (r := deps.table.get_run(run_id)).get("attempt") and script.glue and r, timeout=30, what="the run"
    )
    assert describe_backend(row, deps) is not None
