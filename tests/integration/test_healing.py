"""Every partial state a run can be left in, injected, and healed by the reconciler's sweep: the
real run.asl.json on moto's engine, the real RunStarter, state change handling and reconciler.
Faults are AWS error responses injected into the jobline side's boto3 clients."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from jobline.catalog import parse_catalog
from jobline.deps import Deps
from jobline.reconciler import reconcile
from jobline.runs import execution_arn
from jobline.status import stop
from tests.integration.conftest import wait_for_execution
from tests.integration.test_backends_state_machine import Script, backends, deps_for, script, start  # noqa: F401
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
NOW = timedelta(seconds=0)  # every run is stale at once
ASYNC_DELIVERIES = 3  # an asynchronous invocation: the first try and Lambda's 2 retries


@contextmanager
def failing(client: Any, operation: str, code: str = "ServiceUnavailable") -> Iterator[None]:
    """Every `operation` call of `client` answered with an AWS 5xx error while inside."""
    response = AWSResponse("https://aws", 503, {}, None)

    def refuse(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return response, {"Error": {"Code": code, "Message": "injected"}}

    event = f"before-call.{client.meta.service_model.service_name}.{operation}"
    client.meta.events.register(event, refuse)
    try:
        yield
    finally:
        client.meta.events.unregister(event, refuse)


def describe(stack: dict[str, Any], run_id: str) -> dict[str, Any]:
    sfn = stack["session"].client("stepfunctions")
    return sfn.describe_execution(executionArn=execution_arn(stack["settings"], run_id))


def test_a_run_whose_execution_never_started_is_started(backends: dict[str, Any], script: Script) -> None:  # noqa: F811
    """StartExecution failed on every delivery (or the invocation died after the row write): the
    row is PENDING with no execution, and the next sweep starts it from the row."""
    deps = deps_for(backends, script, "clean-data")
    with failing(deps.starter._sfn, "StartExecution"):
        for _ in range(ASYNC_DELIVERIES):
            with pytest.raises(ClientError, match="ServiceUnavailable"):
                start(deps, "never-started")
    run_id = deps.table.query_runs("by-job-keys", ("job", "clean-data"), limit=1)[0][0]["run_id"]
    with pytest.raises(ClientError, match="ExecutionDoesNotExist"):
        describe(backends, run_id)

    assert reconcile(deps, NOW) == {run_id: "started: its execution had never started"}

    execution = wait_for_execution(backends, run_id, timeout=60)
    assert execution["status"] == "SUCCEEDED"
    row = deps.table.get_run(run_id)
    assert (row["status"], row["attempt"]) == ("SUCCEEDED", 1)
    assert script.processing[0].environment["JOBLINE_TRIGGER_EVENT"] == deps.table.get_run_data(run_id)["event"]


def test_a_run_that_can_no_longer_start_is_ended_visibly(backends: dict[str, Any], script: Script) -> None:  # noqa: F811
    deps = deps_for(backends, script, "clean-data")
    with failing(deps.starter._sfn, "StartExecution"), pytest.raises(ClientError):
        start(deps, "job-removed")
    run_id = deps.table.query_runs("by-job-keys", ("job", "clean-data"), limit=1)[0][0]["run_id"]
    without_the_job = Deps.build(deps.settings, parse_catalog({"jobs": []}), session=backends["session"])

    assert reconcile(without_the_job, NOW) == {run_id: "ended: cannot start"}

    row = deps.table.get_run(run_id)
    assert row["status"] == "FAILED"
    assert row["reason"] == "SubmitFailed: unknown job 'clean-data': the catalog declares []"


def test_an_ended_run_never_resumed_is_resumed(backends: dict[str, Any], script: Script) -> None:  # noqa: F811
    """The service job's terminal event ends the row, but SendTaskSuccess fails on every retry of
    the event: the row is terminal, the execution waits on its token; the sweep resumes it."""
    deps = deps_for(backends, script, "train-model")
    run_id = start(deps, "never-resumed")
    wait_until(lambda: deps.table.get_run(run_id).get("task_token_attempt") == 1, timeout=30, what="the token")
    (job,) = script.service
    with failing(deps.client("stepfunctions"), "SendTaskSuccess"):
        for _ in range(ASYNC_DELIVERIES):
            with pytest.raises(ClientError, match="ServiceUnavailable"):
                script.end_service_job(job, "succeed")
    assert deps.table.get_run(run_id)["status"] == "SUCCEEDED"
    assert describe(backends, run_id)["status"] == "RUNNING"

    healed = reconcile(deps, NOW)

    assert healed == {run_id: "resumed: its waiting execution was handed the outcome"}
    assert wait_for_execution(backends, run_id, timeout=60)["status"] == "SUCCEEDED"
    assert reconcile(deps, NOW) == {}  # nothing left to heal


def test_an_ended_run_still_executing_is_stopped(backends: dict[str, Any], script: Script) -> None:  # noqa: F811
    """An operator's stop ended the row but StopExecution failed: the sweep stops the execution."""
    script.outcomes = {1: "hold"}
    deps = deps_for(backends, script, "clean-data")
    run_id = start(deps, "runs-on")
    wait_until(lambda: script.processing, timeout=30, what="the processing job")
    deps.table.update_run(run_id, lambda row: stop(row, "2026-11-21T00:00:00.000Z"))

    healed = reconcile(deps, NOW)

    assert healed == {run_id: "stopped: the run had ended STOPPED, its execution ran on"}
    assert wait_for_execution(backends, run_id, timeout=30)["status"] == "ABORTED"
    slot = backends["session"].client("dynamodb").get_item(TableName="runs", Key={"pk": {"S": "SLOT#clean-data"}})
    assert "holders" not in slot["Item"]
    assert deps.table.get_run(run_id)["status"] == "STOPPED"


def test_an_ended_run_still_holding_its_slot_releases_it(backends: dict[str, Any], script: Script) -> None:  # noqa: F811
    """The execution ended between RecordOutcome and ReleaseSlot (a ReleaseSlot failing past its
    retries): the row is terminal and the run still holds a slot; the sweep releases it."""
    deps = deps_for(backends, script, "clean-data")
    run_id = start(deps, "slot-kept")
    assert wait_for_execution(backends, run_id, timeout=60)["status"] == "SUCCEEDED"
    ddb = backends["session"].client("dynamodb")
    ddb.update_item(  # what AcquireSlot left and ReleaseSlot never took back
        TableName="runs",
        Key={"pk": {"S": "SLOT#clean-data"}},
        UpdateExpression="ADD #h :run",
        ExpressionAttributeNames={"#h": "holders"},
        ExpressionAttributeValues={":run": {"SS": [run_id]}},
    )
    assert deps.table.slot_holders("clean-data") == [run_id]

    assert reconcile(deps, NOW) == {run_id: "released: the run had ended SUCCEEDED holding a concurrency slot"}

    assert deps.table.slot_holders("clean-data") == []
    assert reconcile(deps, NOW) == {}
    assert deps.table.get_run(run_id)["status"] == "SUCCEEDED"


def test_a_run_that_cannot_be_described_does_not_abort_the_sweep(backends: dict[str, Any], script: Script) -> None:  # noqa: F811
    script.outcomes = {1: "hold"}
    deps = deps_for(backends, script, "clean-data")
    fine = start(deps, "fine")
    broken = start(deps, "broken")  # newer: swept first (the index is read newest first)
    wait_until(lambda: len(script.processing) == 2, timeout=30, what="both processing jobs")
    # A row whose backend refuses the describe call (a job that no longer exists, say).
    deps.table.update_run(broken, lambda row: {**row, "backend": "batch_service", "service_job_id": "gone"})

    healed = reconcile(deps, NOW)

    assert healed[broken] == "error: ClientException: An error occurred (ClientException) when calling the " + (
        "DescribeServiceJob operation: Service job gone does not exist"
    )
    assert not healed[fine].startswith("error")  # looked at after the broken one failed
