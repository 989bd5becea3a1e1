"""SageMaker processing jobs: catalog checks, run input, status mapping, the reconciler's describe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from jobline.backends.sagemaker_processing import SAGEMAKER_RANK, SAGEMAKER_STATUS
from jobline.catalog import parse_catalog
from jobline.dal import RunTable
from jobline.errors import CatalogError, InvalidArguments
from jobline.state_changes import apply_state_change
from jobline.status import RunStatus
from tests.aws_resources import create_pass_machines, create_run_table
from tests.unit.backends.conftest import BACKENDS, SETTINGS, job, parse, request, start_row, submit_params


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            job("a-processing-job-with-a-long-name-xxx-xy", BACKENDS["clean-data"], retry={"attempts": 10}),
            "would be 64 characters, over 63",
        ),
        (
            job("clean-data", {**BACKENDS["clean-data"], "instance_type": "m5.large"}),
            "field backend.instance_type",
        ),
        (
            job("clean-data", {**BACKENDS["clean-data"], "role_arn": "arn:aws:iam::123456789012:role/other"}),
            r"field backend.role_arn: jobline passes only the stack's SageMaker execution role",
        ),
    ],
)
def test_processing_settings_are_checked_before_anything_runs(spec: dict[str, Any], expected: str) -> None:
    with pytest.raises(CatalogError, match=expected):
        parse_catalog({"jobs": [spec]})


def test_processing_input() -> None:
    processing = submit_params(request("clean-data"))
    assert processing["RoleArn"] == SETTINGS.sagemaker_role_arn
    assert processing["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}


def test_sagemaker_environment_values_over_256_characters_are_refused() -> None:
    with pytest.raises(InvalidArguments, match="at most 256 characters"):
        submit_params(request("clean-data", environment={"BIG": "x" * 300}))


@pytest.mark.parametrize(
    ("event", "status", "reason"),
    [
        ("sagemaker-processing-job-completed.json", "SUCCEEDED", "Completed"),
        ("sagemaker-processing-job-failed.json", "TIMEOUT", "Timeout"),
    ],
)
def test_processing_job_events_map_to_run_statuses(table: RunTable, event: str, status: str, reason: str) -> None:
    run_id = "clean-data-0123456789abcdef0123"
    start_row(table, "clean-data", run_id)
    apply_state_change(parse(event), table, None, None)
    row = table.get_run(run_id)
    assert row is not None
    assert (row["status"], row["reason"]) == (status, reason)
    assert row["attempts"]["1"]["started_at"] == "2026-11-21T05:01:00.000Z"


def test_the_status_mapping_covers_every_processing_job_status() -> None:
    assert all(isinstance(run_status, RunStatus) for run_status, _ in SAGEMAKER_STATUS.values())
    assert set(SAGEMAKER_STATUS) == set(SAGEMAKER_RANK)


def test_the_reconciler_heals_a_processing_run_whose_events_were_lost() -> None:
    from jobline.deps import Deps
    from jobline.reconciler import reconcile

    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        create_run_table(session.client("dynamodb"), "runs")
        catalog = parse_catalog({"jobs": [job("clean-data")]})
        prefix = create_pass_machines(session.client("stepfunctions"), session.client("iam"), catalog)
        settings = SETTINGS.model_copy(update={"state_machine_prefix": prefix})
        deps = Deps.build(settings, catalog, session=session)
        run_id = "clean-data-0123456789abcdef0123"
        start_row(deps.table, "clean-data", run_id, updated_at="2026-11-21T00:00:00.000Z")
        session.client("sagemaker").create_processing_job(
            ProcessingJobName=f"{run_id}-1",
            ProcessingResources={
                "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}
            },
            AppSpecification={"ImageUri": "img"},
            RoleArn=SETTINGS.sagemaker_role_arn,
            StoppingCondition={"MaxRuntimeInSeconds": 600},
        )
        fresh = "clean-data-fffffffffffffffffff0"
        start_row(deps.table, "clean-data", fresh, updated_at=datetime.now(UTC).isoformat())

        outcomes = reconcile(deps, timedelta(minutes=15))

        assert set(outcomes) == {run_id}  # the fresh run is left alone
        assert outcomes[run_id] == "applied: STARTING -> SUCCEEDED"
        healed = deps.table.get_run(run_id)
        assert healed is not None
        assert healed["status"] == "SUCCEEDED"  # moto completes processing jobs at once
        assert healed["attempts"]["1"]["backend_status"] == "Completed"
        # Without `older_than`, Settings.reconcile_after_seconds (15 minutes) decides: nothing is stale now.
        assert reconcile(deps) == {}
