"""AWS Batch container jobs: catalog checks, queue and job definition choice, status mapping."""

from __future__ import annotations

from typing import Any

import pytest

from jobline.backends.batch import (
    BATCH_RANK,
    BATCH_STATUS,
    FARGATE_MEMORY_MIB,
    classify_batch_failure,
    map_batch_status,
)
from jobline.catalog import parse_catalog
from jobline.errors import CatalogError, RejectedInput
from jobline.status import RunStatus
from jobline.triggers import RunRequest
from tests.unit.backends.conftest import SETTINGS as STACK
from tests.unit.backends.conftest import job, request, submit_params

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


@pytest.mark.parametrize(
    ("vcpu", "memory_mib"), [(0.25, 8192), (0.25, 4096), (1, 1024), (2, 4000), (8, 18432), (16, 36864), (32, 65536)]
)
def test_fargate_memory_must_fit_the_vcpu(vcpu: float, memory_mib: int) -> None:
    with pytest.raises(CatalogError) as error:
        parse_catalog({"jobs": [job("word-count", {"type": "batch", "vcpu": vcpu, "memory_mib": memory_mib})]})
    (problem,) = error.value.problems
    assert (problem.job, problem.field) == ("word-count", "backend.memory_mib")
    assert f"does not fit Fargate's {vcpu:g} vCPU" in problem.rule


def test_every_documented_fargate_size_is_accepted_and_other_capacity_is_not_checked() -> None:
    """The table AWS documents (Batch API, ResourceRequirement.value): 0.25 vCPU takes 512-2048 MiB,
    ..., 16 vCPU 32-120 GiB in 8 GiB steps, 32 vCPU 60, 120 or 244 GiB."""
    assert FARGATE_MEMORY_MIB[0.25] == (512, 1024, 2048)
    assert FARGATE_MEMORY_MIB[16][0::11] == (32768, 122880)
    sizes = [(vcpu, memory) for vcpu, memory_sizes in FARGATE_MEMORY_MIB.items() for memory in memory_sizes]
    jobs = [job(f"fargate-{i}", {"type": "batch", "vcpu": v, "memory_mib": m}) for i, (v, m) in enumerate(sizes)]
    assert len(parse_catalog({"jobs": jobs}).jobs) == len(sizes)
    # An explicit queue or the GPU capacity is EC2 compute: its sizes are the instance's business.
    for backend in ({"job_queue": "arn:queue/ec2"}, {"capacity": "gpu"}):
        parse_catalog({"jobs": [job("word-count", {"type": "batch", "vcpu": 3, "memory_mib": 5000, **backend})]})


def test_capacity_picks_the_queue_and_gpu_jobs_get_the_gpu_definition() -> None:
    spot = submit_params(batch_request({"type": "batch", "capacity": "spot"}), settings=SETTINGS)
    assert (spot["jobQueue"], spot["jobDefinition"]) == ("arn:queue/spot", "arn:def/default")
    gpu_backend = {"type": "batch", "capacity": "gpu", "gpu": 1, "vcpu": 4, "memory_mib": 15000}
    gpu_stack = SETTINGS.model_copy(update={"job_queue_gpu_arn": "arn:queue/gpu"})
    gpu = submit_params(batch_request(gpu_backend), settings=gpu_stack)
    assert (gpu["jobQueue"], gpu["jobDefinition"]) == ("arn:queue/gpu", "arn:def/gpu")
    assert {"type": "GPU", "value": "1"} in gpu["containerOverrides"]["resourceRequirements"]


def test_a_gpu_job_on_a_stack_without_gpu_compute_is_refused_clearly() -> None:
    with pytest.raises(RejectedInput, match=r"needs the gpu job queue.*EnableGpuCompute"):
        submit_params(batch_request({"type": "batch", "capacity": "gpu", "gpu": 1}), settings=SETTINGS)


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
