"""AWS Batch container jobs: catalog checks, queue and job definition choice, status mapping."""

from __future__ import annotations

from typing import Any

import pytest

from jobline.backends.batch import BATCH_RANK, BATCH_STATUS, classify_batch_failure, map_batch_status
from jobline.catalog import parse_catalog
from jobline.errors import CatalogError, RejectedInput
from jobline.runs import execution_input
from jobline.status import RunStatus
from jobline.triggers import RunRequest
from tests.unit.backends.conftest import SETTINGS as STACK
from tests.unit.backends.conftest import job, request

SETTINGS = STACK.model_copy(
    update={
        "job_queue_on_demand_arn": "arn:queue/on-demand",
        "job_queue_spot_arn": "arn:queue/spot",
        "default_job_definition_arn": "arn:def/default",
        "gpu_job_definition_arn": "arn:def/gpu",
    }
)


def batch_request(backend: dict[str, Any]) -> RunRequest:
    return request("word-count", backend=backend)


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ({"type": "batch", "vcpu": 3}, "not a Fargate size"),
        ({"type": "batch", "gpu": 1}, "capacity: gpu"),
    ],
)
def test_resources_must_fit_the_capacity(backend: dict[str, Any], expected: str) -> None:
    with pytest.raises(CatalogError) as error:
        parse_catalog({"jobs": [job("word-count", backend)]})
    assert "job 'word-count'" in str(error.value)
    assert expected in str(error.value)


def test_capacity_picks_the_queue_and_gpu_jobs_get_the_gpu_definition() -> None:
    spot = execution_input(batch_request({"type": "batch", "capacity": "spot"}), {}, {}, SETTINGS)
    assert (spot["batch"]["JobQueue"], spot["batch"]["JobDefinition"]) == ("arn:queue/spot", "arn:def/default")
    gpu_backend = {"type": "batch", "capacity": "gpu", "gpu": 1, "vcpu": 4, "memory_mib": 15000}
    gpu = execution_input(
        batch_request(gpu_backend), {}, {}, SETTINGS.model_copy(update={"job_queue_gpu_arn": "arn:queue/gpu"})
    )
    assert (gpu["batch"]["JobQueue"], gpu["batch"]["JobDefinition"]) == ("arn:queue/gpu", "arn:def/gpu")
    assert {"Type": "GPU", "Value": "1"} in gpu["batch"]["ContainerOverrides"]["ResourceRequirements"]


def test_a_gpu_job_on_a_stack_without_gpu_compute_is_refused_clearly() -> None:
    with pytest.raises(RejectedInput, match=r"needs the gpu job queue.*EnableGpuCompute"):
        execution_input(batch_request({"type": "batch", "capacity": "gpu", "gpu": 1}), {}, {}, SETTINGS)


def test_batch_status_mapping() -> None:
    assert map_batch_status("RUNNABLE", None, None) == ("STARTING", "In queue")
    assert map_batch_status("STARTING", None, None) == ("STARTING", "Starting")
    assert map_batch_status("RUNNING", None, None) == ("RUNNING", "Running")
    assert map_batch_status("SUCCEEDED", None, 0) == ("SUCCEEDED", "Completed")
    assert classify_batch_failure("Essential container in task exited", 2) == ("FAILED", "NonZeroExitCode")
    assert classify_batch_failure("Job attempt duration exceeded timeout", None) == ("TIMEOUT", "Timeout")
    assert classify_batch_failure("CannotPullContainerError", None) == ("FAILED", "JobFailed")


def test_the_status_mapping_covers_every_batch_status() -> None:
    assert all(isinstance(run_status, RunStatus) for run_status, _ in BATCH_STATUS.values())
    assert set(BATCH_STATUS) | {"FAILED"} == set(BATCH_RANK)  # FAILED is classified by its reason
