"""Run requests to execution input: arguments and the job's environment (each backend's part: tests/unit/backends)."""

from __future__ import annotations

from typing import Any

import pytest

from jobline.catalog import parse_catalog
from jobline.errors import InvalidArguments
from jobline.runs import execution_arn, execution_input, resolve_arguments, run_execution_arn, state_machine_arn
from jobline.settings import Settings
from jobline.triggers import RunRequest, Trigger, run_id
from tests.aws_resources import job_spec

SETTINGS = Settings(
    run_table_name="runs",
    state_machine_prefix="arn:aws:states:us-east-1:123456789012:stateMachine:jobline-run-",
    event_dlq_url="https://dlq",
    run_data_bucket="data",
    job_queue_on_demand_arn="arn:queue/on-demand",
    job_queue_spot_arn="arn:queue/spot",
    default_job_definition_arn="arn:def/default",
    gpu_job_definition_arn="arn:def/gpu",
)
TRIGGER = Trigger(type="manual", key="manual:1", source="test", event={})


def request(**spec: Any) -> RunRequest:
    job = parse_catalog({"jobs": [job_spec(**spec)]}).jobs[0]
    return RunRequest(job=job, trigger=TRIGGER)


def test_run_ids_are_deterministic_and_valid_execution_names() -> None:
    assert run_id("word-count", "s3:b:k:v:1") == run_id("word-count", "s3:b:k:v:1")
    assert run_id("word-count", "s3:b:k:v:1") != run_id("word-count", "s3:b:k:v:2")
    assert run_id("word-count", "x") != run_id("other-job", "x")
    longest = run_id("j" * 40, "x")
    assert len(longest) <= 61
    assert len(f"{longest}-10") <= 128


def test_arguments_are_checked_against_declared_parameters() -> None:
    job = request(
        parameters={"day": {"required": True, "max_length": 10}, "mode": {"default": "full"}}, triggers={"sqs": True}
    ).job
    assert resolve_arguments(job, {"day": "2026-11-20"}) == {"day": "2026-11-20", "mode": "full"}
    with pytest.raises(InvalidArguments, match=r"does not declare parameters \['colour'\]"):
        resolve_arguments(job, {"day": "x", "colour": "red"})
    with pytest.raises(InvalidArguments, match="requires parameter 'day'"):
        resolve_arguments(job, {})
    with pytest.raises(InvalidArguments, match="11 characters, over its max_length 10"):
        resolve_arguments(job, {"day": "x" * 11})


def test_the_batch_environment_is_the_jobs_environment_as_list_items() -> None:
    req = request(environment={"LOG_LEVEL": "debug"})
    payload = execution_input(req.job, req.run_id, {"output_prefix": "x/"}, {"JOBLINE_TRIGGER_EVENT": "{}"}, SETTINGS)
    # The submitter appends JOBLINE_ATTEMPT as one more item (jobline.backends.batch.Batch.submit).
    parsed = payload["request"]["params"]["containerOverrides"]["environment"]
    env = {item["name"]: item["value"] for item in parsed}
    assert env == {
        "LOG_LEVEL": "debug",
        "JOBLINE_RUN_ID": req.run_id,
        "JOBLINE_JOB_NAME": "word-count",
        "JOBLINE_MAX_ATTEMPTS": "1",
        "JOBLINE_TRIGGER_EVENT": "{}",
        "JOBLINE_ARG_OUTPUT_PREFIX": "x/",
    }


def test_a_run_executes_on_the_machine_of_its_jobs_retry_policy() -> None:
    catalog = parse_catalog({"jobs": [job_spec("plain"), job_spec("limited", max_concurrent_runs=2)]})
    plain, limited = catalog.jobs
    prefix = SETTINGS.state_machine_prefix
    assert state_machine_arn(SETTINGS, plain) == f"{prefix}{plain.policy_id}"
    assert state_machine_arn(SETTINGS, limited) == f"{prefix}{limited.policy_id}" != state_machine_arn(SETTINGS, plain)
    execution = "arn:aws:states:us-east-1:123456789012:execution:jobline-run-"
    assert execution_arn(SETTINGS, plain, "plain-1") == f"{execution}{plain.policy_id}:plain-1"
    # A row keeps the ARN it was created with; an older row gets its job's; a job gone has none.
    stored = {"run_id": "plain-1", "job": "plain", "execution_arn": "arn:stored"}
    assert run_execution_arn(SETTINGS, catalog, stored) == "arn:stored"
    assert run_execution_arn(SETTINGS, catalog, {"run_id": "plain-1", "job": "plain"}) == execution_arn(
        SETTINGS, plain, "plain-1"
    )
    assert run_execution_arn(SETTINGS, catalog, {"run_id": "gone-1", "job": "gone"}) is None
