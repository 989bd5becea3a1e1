"""Every status each backend's API documents maps to a run status, read from botocore's service
models: a status AWS adds fails this test until jobline maps it. And each backend recognises a
timeout by its documented signal only, never by a reason that merely mentions one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import botocore.session
import pytest

from jobline.backends import batch, batch_service, glue, sagemaker_processing
from jobline.backends.base import MAX_RUNTIME_EXCEEDED
from jobline.status import Reason, RunStatus

# (service, enum shape) -> the backend's rank table, its mapping, and the event model field
# that carries the status (an event with any documented status must parse).
VOCABULARIES: dict[tuple[str, str], tuple[Mapping[str, int], Callable[[str], Any], Any, str]] = {
    ("batch", "JobStatus"): (
        batch.BATCH_RANK,
        lambda s: batch.map_batch_status(s, None, None),
        batch.BatchJobDetail,
        "status",
    ),
    ("batch", "ServiceJobStatus"): (
        batch_service.SERVICE_RANK,
        lambda s: batch_service.map_service_status(s, None),
        batch_service.ServiceJobDetail,
        "status",
    ),
    ("sagemaker", "ProcessingJobStatus"): (
        sagemaker_processing.SAGEMAKER_RANK,
        lambda s: sagemaker_processing.map_sagemaker_status(s, None),
        sagemaker_processing.ProcessingJobDetail,
        "ProcessingJobStatus",
    ),
    ("glue", "JobRunState"): (glue.GLUE_RANK, glue.map_glue_state, glue.GlueJobDetail, "state"),
}
REQUIRED = {
    batch.BatchJobDetail: {"jobName": "j", "jobId": "1", "jobQueue": "q"},
    batch_service.ServiceJobDetail: {"jobName": "j", "jobId": "1", "jobQueue": "q"},
    sagemaker_processing.ProcessingJobDetail: {"ProcessingJobName": "j"},
    glue.GlueJobDetail: {"jobName": "j", "jobRunId": "jr_1"},
    batch_service.TrainingJobDetail: {"TrainingJobName": "j"},
}


def documented(service: str, shape: str) -> list[str]:
    return botocore.session.get_session().get_service_model(service).shape_for(shape).enum


@pytest.mark.parametrize(("service", "shape"), sorted(VOCABULARIES))
def test_every_documented_status_maps_to_a_run_status(service: str, shape: str) -> None:
    ranks, mapping, model, field = VOCABULARIES[(service, shape)]
    statuses = documented(service, shape)
    assert statuses, f"{service} {shape} has no enum in botocore's model"
    assert set(ranks) == set(statuses), f"{shape}: jobline ranks {sorted(ranks)}, AWS documents {sorted(statuses)}"
    for status in statuses:
        run_status, reason = mapping(status)
        assert isinstance(run_status, RunStatus), status
        assert isinstance(reason, Reason), status
        parsed = model.model_validate({**REQUIRED[model], field: status})
        assert getattr(parsed, field) == status


def test_every_documented_training_status_is_an_event_jobline_accepts() -> None:
    """Training events add detail to a service job's attempt (the service job moves the run), so
    each status must parse, not map."""
    for status in documented("sagemaker", "TrainingJobStatus"):
        parsed = batch_service.TrainingJobDetail.model_validate({"TrainingJobName": "j", "TrainingJobStatus": status})
        assert parsed.TrainingJobStatus == status


def test_an_expired_glue_run_fails_its_attempt() -> None:
    assert glue.map_glue_state("EXPIRED") == (RunStatus.FAILED, Reason.JOB_FAILED)
    assert glue.GLUE_RANK["EXPIRED"] == glue.GLUE_RANK["FAILED"]


# A job's own message that mentions a timeout is its failure, not its runtime limit.
LOOKALIKES = ["AlgorithmError: timeout waiting for data", "ClientError: connection timed out", "max runtime 60 s"]


@pytest.mark.parametrize("reason", LOOKALIKES)
def test_a_reason_that_mentions_a_timeout_is_a_failure(reason: str) -> None:
    assert batch.classify_batch_failure(reason, None) == (RunStatus.FAILED, Reason.JOB_FAILED)
    assert batch_service.map_service_status("FAILED", reason) == (RunStatus.FAILED, Reason.JOB_FAILED)
    assert sagemaker_processing.map_sagemaker_status("Failed", reason) == (RunStatus.FAILED, Reason.JOB_FAILED)
    assert sagemaker_processing.map_sagemaker_status("Stopped", reason) == (RunStatus.STOPPED, Reason.STOPPED_BY_USER)


def test_each_backend_recognises_its_documented_timeout_signal() -> None:
    timeout = (RunStatus.TIMEOUT, Reason.TIMEOUT)
    assert batch.classify_batch_failure("Job attempt duration exceeded timeout", 137) == timeout
    assert batch_service.map_service_status("FAILED", batch.BATCH_TIMEOUT_REASON) == timeout
    relayed = f"Received status from SageMaker: {MAX_RUNTIME_EXCEEDED}: Training job exceeded its maximum runtime"
    assert batch_service.map_service_status("FAILED", relayed) == timeout
    assert sagemaker_processing.map_sagemaker_status("Stopped", f"{MAX_RUNTIME_EXCEEDED}: stopped") == timeout
    assert glue.map_glue_state("TIMEOUT") == timeout
    # Written as AWS writes it: SageMaker's identifier is not matched in other casings.
    assert sagemaker_processing.map_sagemaker_status("Failed", "maxruntimeexceeded")[0] is RunStatus.FAILED
