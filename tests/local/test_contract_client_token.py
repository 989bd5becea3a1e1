"""SubmitServiceJob: a second request with the same clientToken and payload is rejected."""

from __future__ import annotations

import json

from boto3.session import Session

from tests.aws_resources import create_training_queue, training_job_request
from tests.local.conftest import client, refusal

PAYLOAD = json.dumps(training_job_request("t-1"))


def test_the_same_token_and_payload_twice_is_rejected(aws: Session) -> None:
    batch = client(aws, "batch")
    params = {
        "jobName": "train-1",
        "jobQueue": create_training_queue(batch),
        "serviceJobType": "SAGEMAKER_TRAINING",
        "serviceRequestPayload": PAYLOAD,
        "clientToken": "run-1-1",
    }
    first = batch.submit_service_job(**params)
    error = refusal(batch.submit_service_job, **params)
    assert (error["code"], error["status"]) == ("ClientException", 400)
    assert "clientToken run-1-1" in error["message"]
    assert "rejected" in error["message"]
    jobs = batch.list_service_jobs(jobQueue=params["jobQueue"])["jobSummaryList"]
    assert [job["jobId"] for job in jobs] == [first["jobId"]]  # nothing submitted twice


def test_a_token_is_kept_only_once_its_request_was_accepted(aws: Session) -> None:
    batch = client(aws, "batch")
    queue = create_training_queue(batch)
    params = {
        "jobName": "train-1",
        "jobQueue": "no-such-queue",
        "serviceJobType": "SAGEMAKER_TRAINING",
        "serviceRequestPayload": PAYLOAD,
        "clientToken": "run-2-1",
    }
    assert "does not exist" in refusal(batch.submit_service_job, **params)["message"]
    # A refused request does not use its token: the retry is refused for the queue again, not as a repeat.
    assert "does not exist" in refusal(batch.submit_service_job, **params)["message"]
    assert batch.submit_service_job(**{**params, "jobQueue": queue})["jobName"] == "train-1"
    other = batch.submit_service_job(**{**params, "jobQueue": queue, "clientToken": "run-2-2"})
    assert other["jobName"] == "train-1"
