"""What the adaptation tests share: clients of the mocked AWS, moto's originals, small resources
and a way to run an ASL snippet on moto's engine."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
from botocore.exceptions import ClientError

from jobline_local import adaptations
from tests.aws_resources import REGION, create_training_queue

ACCOUNT = "123456789012"


def original(owner: Any, name: str) -> Any:
    return adaptations.originals[(owner, name)]


def client(service: str, endpoint: str | None = None) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)


def make_batch() -> tuple[str, str]:
    iam, batch = client("iam"), client("batch")
    role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    env = batch.create_compute_environment(computeEnvironmentName="local-ce", type="UNMANAGED", serviceRole=role)
    queue = batch.create_job_queue(
        jobQueueName="local-q",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}],
    )["jobQueueArn"]
    definition = batch.register_job_definition(
        jobDefinitionName="local-d",
        type="container",
        containerProperties={
            "image": "x",
            "command": ["true"],
            "environment": [{"name": "FROM_DEFINITION", "value": "1"}],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
        },
    )["jobDefinitionArn"]
    return queue, definition


def finish(job: Any, exit_code: int) -> None:
    job.exit_code = exit_code
    job.job_started_at = job.job_created_at
    job._mark_stopped(success=exit_code == 0)


def wait_status(sfn: Any, execution: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.1)
    raise AssertionError("execution still running")


def run_asl(states: dict[str, Any], first: str, payload: dict[str, Any] | None = None, wait: bool = True) -> Any:
    sfn, iam = client("stepfunctions"), client("iam")
    try:
        role = iam.create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    except ClientError:
        role = iam.get_role(RoleName="sfn")["Role"]["Arn"]
    definition = json.dumps({"StartAt": first, "States": states})
    machine = sfn.create_state_machine(name=f"m{time.monotonic_ns()}", definition=definition, roleArn=role)
    arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name="e", input=json.dumps(payload or {}))[
        "executionArn"
    ]
    return wait_execution(arn) if wait else arn


def wait_execution(arn: str, timeout: float = 20) -> dict[str, Any]:
    sfn = client("stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            failures = [
                e["taskFailedEventDetails"]
                for e in sfn.get_execution_history(executionArn=arn)["events"]
                if "taskFailedEventDetails" in e
            ]
            return {**described, "failures": failures}
        time.sleep(0.05)
    raise AssertionError("execution still running")


def task(resource: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"T": {"Type": "Task", "Resource": resource, "Parameters": parameters, "End": True}}


SFN = {"stepfunctions": {"execute_state_machine": True}}


def make_glue_job(max_runs: int = 1) -> None:
    client("glue").create_job(
        Name="g",
        Role="arn:aws:iam::123456789012:role/glue",
        Command={"Name": "glueetl", "ScriptLocation": "s3://b/x.py"},
        ExecutionProperty={"MaxConcurrentRuns": max_runs},
    )


GLUE_SYNC = task("arn:aws:states:::glue:startJobRun.sync", {"JobName": "g"})


PROCESSING_REQUEST = {
    "ProcessingJobName": "p-1",
    "AppSpecification": {"ImageUri": "123.dkr.ecr.us-east-1.amazonaws.com/x:1"},
    "Environment": {"A": "1"},
    "RoleArn": "arn:aws:iam::123456789012:role/sm",
    "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}},
    "StoppingCondition": {"MaxRuntimeInSeconds": 60},
}
# The same request as an ASL task's parameters, its role taken from the input.
PROCESSING = {**{k: v for k, v in PROCESSING_REQUEST.items() if k != "RoleArn"}, "RoleArn.$": "$.role"}
# Retried as run.asl.json's RunProcessing state retries it: CreateProcessingJob is throttled at
# AWS's rate (jobline_local.contracts.throttling), and several runs start within a second.
PROCESSING_RETRY = [
    {"ErrorEquals": ["SageMaker.ThrottlingException"], "IntervalSeconds": 1, "MaxAttempts": 5, "BackoffRate": 1.5}
]


def processing_sync(name: str) -> dict[str, Any]:
    """A createProcessingJob.sync task of PROCESSING, named `name`."""
    states = task("arn:aws:states:::sagemaker:createProcessingJob.sync", {**PROCESSING, "ProcessingJobName": name})
    states["T"]["Retry"] = PROCESSING_RETRY
    return states


PROCESSING_SYNC = processing_sync("p-1")
ROLE = {"role": "arn:aws:iam::123456789012:role/sm"}


def make_service_queue(endpoint: str | None = None) -> str:
    return create_training_queue(client("batch", endpoint))
