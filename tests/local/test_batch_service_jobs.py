"""The Batch service job API moto lacks (emulated.batch_service_jobs), in-process and through the
HTTP routes, and its local compute (emulated.batch_service_compute): statuses within capacity,
failures, timeouts and terminations, with events jobline's own models accept."""

from __future__ import annotations

import json
import threading
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from jobline.backends.batch_service import map_service_status
from jobline_local.emulated.batch_service_jobs import batch_backend
from tests.aws_resources import REGION, create_training_queue, training_job_request
from tests.local.moto_support import client, make_service_queue, original
from tests.waiting import wait_until


def training_payload(size: int) -> str:
    """A complete CreateTrainingJob request whose JSON is `size` bytes: hyperparameters (at most
    2,500 characters each, CreateTrainingJob's limit) make up the length."""
    hyperparameters: dict[str, str] = {}

    def text() -> str:
        return json.dumps(training_job_request("train-1", HyperParameters=hyperparameters))

    while len(text()) < size:
        key = f"pad-{len(hyperparameters)}"
        hyperparameters[key] = ""
        hyperparameters[key] = "y" * min(2500, size - len(text()))
    assert len(text()) == size
    return text()


def service_job_calls(endpoint: str | None, adapted: dict[str, Any]) -> None:
    batch = client("batch", endpoint)
    queue = make_service_queue(endpoint)
    (described,) = batch.describe_job_queues(jobQueues=[queue])["jobQueues"]
    assert described["jobQueueType"] == "SAGEMAKER_TRAINING"
    assert described["serviceEnvironmentOrder"][0]["serviceEnvironment"].endswith(":service-environment/training")
    assert batch.describe_service_environments()["serviceEnvironments"][0]["capacityLimits"] == [
        {"maxCapacity": 1, "capacityUnit": "NUM_INSTANCES"}
    ]
    request = {
        "jobName": "train-1",
        "jobQueue": queue,
        "serviceJobType": "SAGEMAKER_TRAINING",
        "serviceRequestPayload": training_payload(10 * 1024),
        "clientToken": "run-1",
        "tags": {"jobline:attempt": "1"},
        "timeoutConfig": {"attemptDurationSeconds": 600},
    }
    assert len(request["serviceRequestPayload"]) == 10 * 1024  # exactly the quota: accepted
    first = batch.submit_service_job(**request)
    assert first["jobArn"].endswith(f":service-job/{first['jobId']}")

    def refused(message: str, **changes: Any) -> None:
        with pytest.raises(ClientError, match=message) as caught:
            batch.submit_service_job(**{**request, **changes})
        assert caught.value.response["Error"]["Code"] == "ClientException"

    refused("clientToken run-1 and an identical payload was already received")  # the same request again
    refused("already used .* with other parameters", jobName="train-2")
    refused("10241 bytes; the maximum is 10240", clientToken="run-2", serviceRequestPayload=training_payload(10241))
    refused("does not exist", clientToken="run-3", jobQueue="nope")
    refused("must be a JSON object", clientToken="run-4", serviceRequestPayload="[]")

    job = batch.describe_service_job(jobId=first["jobId"])
    assert (job["status"], job["jobName"], job["jobQueue"]) == ("SUBMITTED", "train-1", queue)
    assert (job["tags"], job["timeoutConfig"]) == (request["tags"], {"attemptDurationSeconds": 600})
    assert job["retryStrategy"] == {"attempts": 1}
    (listed,) = batch.list_service_jobs(jobQueue=queue)["jobSummaryList"]
    assert listed["jobId"] == first["jobId"]
    batch.terminate_service_job(jobId=first["jobId"], reason="Stopped by user")
    ended = batch.describe_service_job(jobId=first["jobId"])
    assert (ended["status"], ended["statusReason"], ended["isTerminated"]) == ("FAILED", "Stopped by user", True)
    assert batch.list_service_jobs(jobQueue=queue, jobStatus="RUNNING")["jobSummaryList"] == []
    with pytest.raises(ClientError, match="does not exist"):
        batch.describe_service_job(jobId="nope")


def test_batch_service_jobs(adapted: dict[str, Any]) -> None:
    from moto.batch.responses import BatchResponse
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    for name in ("submitservicejob", "describeservicejob", "terminateservicejob", "listservicejobs"):
        assert original(BatchResponse, name) is None, f"moto now implements {name}"
    with mock_aws():
        service_job_calls(None, adapted)
        # Through the HTTP routes, as the local stack serves them (server mode).
        server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            from moto.core import DEFAULT_ACCOUNT_ID

            batch_backend(DEFAULT_ACCOUNT_ID, REGION).reset()
            service_job_calls(f"http://127.0.0.1:{server.server_port}", adapted)
        finally:
            server.shutdown()

    handed: list[Any] = []
    adapted["service_job"] = handed.append
    with mock_aws():
        queue = make_service_queue()
        batch = client("batch")
        payload = json.dumps(training_job_request("j"))
        job_id = batch.submit_service_job(
            jobName="j", jobQueue=queue, serviceJobType="SAGEMAKER_TRAINING", serviceRequestPayload=payload
        )["jobId"]
        assert [j.job_id for j in handed] == [job_id]
        batch.terminate_service_job(jobId=job_id, reason="stop it")
        assert handed[0].terminate_reason == "stop it"  # the local stand-in ends it
        assert batch.describe_service_job(jobId=job_id)["status"] == "SUBMITTED"
        env = client("batch").create_compute_environment(
            computeEnvironmentName="local-ce",
            type="UNMANAGED",
            serviceRole=client("iam").create_role(RoleName="b", AssumeRolePolicyDocument="{}")["Role"]["Arn"],
        )["computeEnvironmentArn"]
        ecs_queue = batch.create_job_queue(
            jobQueueName="ecs",
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env}],
        )["jobQueueArn"]
        with pytest.raises(ClientError, match="does not match job queue ecs"):
            batch.submit_service_job(
                jobName="j", jobQueue=ecs_queue, serviceJobType="SAGEMAKER_TRAINING", serviceRequestPayload=payload
            )
        definition = batch.register_job_definition(
            jobDefinitionName="d", type="container", containerProperties={"image": "x", "vcpus": 1, "memory": 512}
        )["jobDefinitionArn"]
        with pytest.raises(ClientError, match="use SubmitServiceJob"):
            batch.submit_job(jobName="j", jobQueue=queue, jobDefinition=definition)


# ---------------------------------------------------------------- the local compute
def service_queue(capacity: int = 1) -> str:
    return create_training_queue(boto3.client("batch", region_name=REGION), capacity)


def submit(queue: str, name: str, runtime: int = 60, **env: str) -> str:
    payload = training_job_request(
        name,
        HyperParameters={"epochs": "3"},
        StoppingCondition={"MaxRuntimeInSeconds": runtime},
        Environment={"JOBLINE_ATTEMPT": "1", **env},
        Tags=[{"Key": "jobline:run-id", "Value": name}, {"Key": "jobline:attempt", "Value": "1"}],
    )
    return boto3.client("batch", region_name=REGION).submit_service_job(
        jobName=name,
        jobQueue=queue,
        serviceJobType="SAGEMAKER_TRAINING",
        serviceRequestPayload=json.dumps(payload),
        tags={"jobline:job": "train"},
    )["jobId"]


def service_job(job_id: str) -> dict[str, Any]:
    return boto3.client("batch", region_name=REGION).describe_service_job(jobId=job_id)


def service_ended(job_id: str) -> dict[str, Any]:
    return wait_until(lambda: (job := service_job(job_id))["status"] in ("SUCCEEDED", "FAILED") and job)


def test_service_jobs_move_through_batch_statuses_within_capacity(local: dict[str, Any]) -> None:
    queue = service_queue(capacity=1)
    first = submit(queue, "train-1", JOBLINE_ARG_SECONDS="1")
    second = submit(queue, "train-2")
    wait_until(lambda: service_job(first)["status"] == "RUNNING")
    assert service_job(second)["status"] == "RUNNABLE"  # one instance of capacity: it waits

    for job_id in (first, second):
        job = service_ended(job_id)
        assert job["status"] == "SUCCEEDED"
        assert job["attempts"][0]["serviceResourceId"]["name"] == "TrainingJobArn"
        assert job["startedAt"] <= job["stoppedAt"]
    statuses = [d.status for d in local["events"].of("Batch Service Job State Change") if d.jobName == "train-1"]
    assert statuses == ["SUBMITTED", "RUNNABLE", "SCHEDULED", "STARTING", "RUNNING", "SUCCEEDED"]
    training = [
        d for d in local["events"].of("SageMaker Training Job State Change") if d.Tags["jobline:run-id"] == "train-1"
    ]
    assert [(d.TrainingJobStatus, d.SecondaryStatus) for d in training] == [
        ("InProgress", "Starting"),
        ("InProgress", "Training"),
        ("Completed", "Completed"),
    ]
    assert training[0].TrainingJobArn == service_job(first)["attempts"][0]["serviceResourceId"]["value"]
    (log,) = [p for p in local["logs"].glob("AWSBatchtrain-1*.log")]
    env = json.loads(log.read_text().splitlines()[0])["env"]
    assert json.loads(env["SM_HPS"]) == {"epochs": "3"}
    assert env["SM_HP_EPOCHS"] == "3"
    assert env["JOBLINE_ATTEMPT"] == "1"


def test_service_jobs_fail_time_out_and_terminate(local: dict[str, Any]) -> None:
    queue = service_queue(capacity=3)
    failing = submit(queue, "train-exit", JOBLINE_ARG_EXIT="2")
    slow = submit(queue, "train-slow", runtime=1, JOBLINE_ARG_SECONDS="30")
    stopped = submit(queue, "train-stop", JOBLINE_ARG_SECONDS="30")

    failed = service_ended(failing)
    assert failed["status"] == "FAILED"
    assert map_service_status("FAILED", failed["statusReason"])[0].value == "FAILED"
    timed_out = service_ended(slow)
    assert map_service_status("FAILED", timed_out["statusReason"])[0].value == "TIMEOUT"
    wait_until(lambda: service_job(stopped)["status"] == "RUNNING")
    boto3.client("batch", region_name=REGION).terminate_service_job(jobId=stopped, reason="Stopped by user")
    terminated = service_ended(stopped)
    assert (terminated["status"], terminated["statusReason"], terminated["isTerminated"]) == (
        "FAILED",
        "Stopped by user",
        True,
    )
    training = {d.Tags["jobline:run-id"]: d for d in local["events"].of("SageMaker Training Job State Change")}
    assert (training["train-exit"].TrainingJobStatus, training["train-slow"].SecondaryStatus) == (
        "Failed",
        "MaxRuntimeExceeded",
    )
    assert training["train-stop"].TrainingJobStatus == "Stopped"
