"""A Batch service job's serviceRequestPayload is checked against SageMaker's CreateTrainingJob."""

from __future__ import annotations

import json
from typing import Any

from boto3.session import Session

from tests.aws_resources import SAGEMAKER_ROLE, TRAINING_REQUEST, create_training_queue, training_job_request
from tests.local.conftest import client, refusal


def submit(batch: Any, queue: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "jobName": "train-1",
        "jobQueue": queue,
        "serviceJobType": "SAGEMAKER_TRAINING",
        "serviceRequestPayload": json.dumps(payload),
    }


def test_a_payload_without_training_job_name_is_refused(aws: Session) -> None:
    batch = client(aws, "batch")
    queue = create_training_queue(batch)
    error = refusal(batch.submit_service_job, **submit(batch, queue, {**TRAINING_REQUEST, "RoleArn": SAGEMAKER_ROLE}))
    assert (error["code"], error["status"]) == ("ClientException", 400)
    assert "Value null at 'serviceRequestPayload.TrainingJobName' failed to satisfy constraint" in error["message"]


def test_a_payload_member_breaking_its_pattern_is_refused(aws: Session) -> None:
    batch = client(aws, "batch")
    queue = create_training_queue(batch)
    error = refusal(batch.submit_service_job, **submit(batch, queue, training_job_request("run_1")))
    assert error["code"] == "ClientException"
    assert "'serviceRequestPayload.TrainingJobName'" in error["message"]
    assert "regular expression pattern" in error["message"]


def test_a_payload_that_is_no_json_object_is_refused(aws: Session) -> None:
    batch = client(aws, "batch")
    queue = create_training_queue(batch)
    params = {**submit(batch, queue, {}), "serviceRequestPayload": "[1]"}
    error = refusal(batch.submit_service_job, **params)
    assert error["code"] == "ClientException"
    assert "Member must be a JSON object (a CreateTrainingJob request)" in error["message"]


def test_a_complete_create_training_job_payload_is_accepted(aws: Session) -> None:
    batch = client(aws, "batch")
    queue = create_training_queue(batch)
    payload = training_job_request("run-1-attempt-1")
    assert batch.submit_service_job(**submit(batch, queue, payload))["jobName"] == "train-1"
