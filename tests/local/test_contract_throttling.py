"""Each submit API answers calls over its rate quota with the error its service throttles with."""

from __future__ import annotations

import json
from typing import Any

import pytest
from boto3.session import Session

from jobline_local.contracts import throttling
from tests.aws_resources import create_batch, create_training_queue, training_job_request
from tests.local.conftest import client, refusal

ROLE = "arn:aws:iam::123456789012:role/sm"


def _submit_job(aws: Any) -> tuple[Any, dict[str, Any]]:
    queue, definition = create_batch(aws)
    return client(aws, "batch").submit_job, {"jobName": "j", "jobQueue": queue, "jobDefinition": definition}


def _submit_service_job(aws: Any) -> tuple[Any, dict[str, Any]]:
    batch = client(aws, "batch")
    payload = training_job_request("t")
    params = {
        "jobName": "j",
        "jobQueue": create_training_queue(batch),
        "serviceJobType": "SAGEMAKER_TRAINING",
        "serviceRequestPayload": json.dumps(payload),
    }
    return batch.submit_service_job, params


def _create_processing_job(aws: Any) -> tuple[Any, dict[str, Any]]:
    params = {
        "ProcessingJobName": "p-1",
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 10}
        },
        "AppSpecification": {"ImageUri": "123.dkr.ecr.us-east-1.amazonaws.com/clean:1"},
        "RoleArn": ROLE,
    }
    return client(aws, "sagemaker").create_processing_job, params


def _create_training_job(aws: Any) -> tuple[Any, dict[str, Any]]:
    params = training_job_request("t-1", StoppingCondition={})
    return client(aws, "sagemaker").create_training_job, params


def _start_job_run(aws: Any) -> tuple[Any, dict[str, Any]]:
    glue = client(aws, "glue")
    glue.create_job(Name="etl", Role=ROLE, Command={"Name": "glueetl"}, ExecutionProperty={"MaxConcurrentRuns": 10})
    return glue.start_job_run, {"JobName": "etl"}


def _start_execution(aws: Any) -> tuple[Any, dict[str, Any]]:
    sfn = client(aws, "stepfunctions")
    definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    machine = sfn.create_state_machine(name="m", definition=definition, roleArn=ROLE)["stateMachineArn"]
    return sfn.start_execution, {"stateMachineArn": machine}


CASES = {
    # operation: (make the call, AWS's throttling error code, HTTP status)
    "SubmitJob": (_submit_job, "TooManyRequestsException", 429),
    "SubmitServiceJob": (_submit_service_job, "TooManyRequestsException", 429),
    "CreateProcessingJob": (_create_processing_job, "ThrottlingException", 400),
    "CreateTrainingJob": (_create_training_job, "ThrottlingException", 400),
    "StartJobRun": (_start_job_run, "ThrottlingException", 400),
    "StartExecution": (_start_execution, "ThrottlingException", 400),
}


@pytest.mark.parametrize("operation", list(CASES))
def test_a_call_over_the_rate_is_throttled_as_aws_throttles(aws: Session, operation: str) -> None:
    make, code, status = CASES[operation]
    call, params = make(aws)
    throttling.configure({operation: (0.001, 1)})  # one call, then (practically) no refill
    rename = {"ProcessingJobName": "p-2", "TrainingJobName": "t-2", "name": "second"}
    call(**params)
    error = refusal(call, **{k: rename.get(k, v) for k, v in params.items()})
    assert (error["code"], error["status"]) == (code, status)


def test_tokens_refill_at_the_configured_rate(monkeypatch: pytest.MonkeyPatch, aws: Session) -> None:
    now = [1000.0]
    monkeypatch.setattr(throttling.time, "monotonic", lambda: now[0])
    call, params = _submit_job(aws)
    throttling.configure({"SubmitJob": (2, 2)})
    call(**params)
    call(**params)
    assert refusal(call, **params)["code"] == "TooManyRequestsException"
    now[0] += 0.5  # 2 per second: one token back
    call(**params)
    assert refusal(call, **params)["code"] == "TooManyRequestsException"


def test_rates_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBLINE_QUOTA_SUBMITJOB", "20")
    monkeypatch.setenv("JOBLINE_QUOTA_STARTEXECUTION", "300:1300")
    assert throttling.rate_of(("batch", "SubmitJob")) == (20.0, 20.0)
    assert throttling.rate_of(("stepfunctions", "StartExecution")) == (300.0, 1300.0)
    monkeypatch.delenv("JOBLINE_QUOTA_SUBMITJOB")
    assert throttling.rate_of(("batch", "SubmitJob")) == (50, 50)  # AWS's default
