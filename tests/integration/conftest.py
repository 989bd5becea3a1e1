"""The real statemachines/run.asl.json executed by moto's Step Functions engine, in-process,
against moto's DynamoDB (the run table as template.yaml declares it) and moto's Batch."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.batch_simple.models import BatchSimpleBackend

from jobline.catalog import parse_catalog
from jobline.deps import Deps
from jobline.settings import Settings
from jobline_local import moto_adaptations
from tests.cfn import ASL, resource

REGION = "us-east-1"
TIMEOUT_REASON = "Job attempt duration exceeded timeout"


def create_run_table(ddb: Any, name: str) -> None:
    props = resource("RunTable")["Properties"]
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
    )


def create_state_machine(sfn: Any, iam: Any, table: str) -> str:
    substitutions = {"RunTableName": table}
    definition = ASL.read_text()
    for key, value in substitutions.items():
        definition = definition.replace("${" + key + "}", value)
    role = iam.create_role(RoleName="run-state-machine", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    return sfn.create_state_machine(name="jobline-run", definition=definition, roleArn=role, type="STANDARD")[
        "stateMachineArn"
    ]


def create_batch(session: Any) -> tuple[str, str]:
    iam, ec2, batch = (session.client(n) for n in ("iam", "ec2", "batch"))
    role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="jobs", Description="jobs", VpcId=vpc)["GroupId"]
    env = batch.create_compute_environment(
        computeEnvironmentName="fargate",
        type="MANAGED",
        state="ENABLED",
        serviceRole=role,
        computeResources={"type": "FARGATE", "maxvCpus": 4, "subnets": [subnet], "securityGroupIds": [group]},
    )["computeEnvironmentArn"]
    queue = batch.create_job_queue(
        jobQueueName="on-demand",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env}],
    )["jobQueueArn"]
    definition = batch.register_job_definition(
        jobDefinitionName="default",
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties={
            "image": "python:3.11-slim",
            "command": ["true"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
            "executionRoleArn": role,
        },
    )["jobDefinitionArn"]
    return queue, definition


class BatchScript:
    """Decides how moto's Docker-less Batch ends each attempt: succeed, exit 1 or time out."""

    def __init__(self) -> None:
        self.outcomes: dict[int, str] = {}
        self.submitted: list[dict[str, Any]] = []

    def finish(self, backend: BatchSimpleBackend, job: Any) -> None:
        backend.backend._jobs[job.job_id] = job
        job.job_started_at = datetime.now()
        job.log_stream_name = job._stream_name
        job._start_attempt()
        tags = backend.list_tags_for_resource(job.arn)
        self.submitted.append({"name": job.job_name, "tags": tags, "overrides": job.container_overrides})
        outcome = self.outcomes.get(int(tags.get("jobline:attempt", "1")), "succeed")
        if outcome == "exit1":
            job.exit_code = 1
        elif outcome == "timeout":
            job.job_stopped_reason = TIMEOUT_REASON
        job._mark_stopped(success=outcome == "succeed")


@pytest.fixture
def batch_script(monkeypatch: pytest.MonkeyPatch) -> BatchScript:
    script = BatchScript()
    monkeypatch.setattr(
        BatchSimpleBackend, "_mark_job_as_finished", lambda self, include_start_attempt, job: script.finish(self, job)
    )
    return script


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, batch_script: BatchScript) -> Iterator[dict[str, Any]]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "jobline",
        "POWERTOOLS_METRICS_NAMESPACE": "Jobline",
    }.items():
        monkeypatch.setenv(key, value)
    moto_adaptations.apply()
    with mock_aws(config={"batch": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}):
        session = boto3.session.Session(region_name=REGION)
        create_run_table(session.client("dynamodb"), "runs")
        machine = create_state_machine(session.client("stepfunctions"), session.client("iam"), "runs")
        queue, definition = create_batch(session)
        session.client("s3").create_bucket(Bucket="run-data")
        dlq = session.client("sqs").create_queue(QueueName="event-dlq")["QueueUrl"]
        settings = Settings(
            run_table_name="runs",
            state_machine_arn=machine,
            event_dlq_url=dlq,
            run_data_bucket="run-data",
            job_queue_on_demand_arn=queue,
            job_queue_spot_arn=queue,
            default_job_definition_arn=definition,
        )
        yield {"session": session, "settings": settings, "queue": queue}


def make_deps(stack: dict[str, Any], jobs: list[dict[str, Any]]) -> Deps:
    return Deps.build(stack["settings"], parse_catalog({"jobs": jobs}), session=stack["session"])


def job_spec(name: str = "word-count", **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "description": "test job",
        "backend": {"type": "batch", "command": ["python", "-c", "print(1)"], "vcpu": 1, "memory_mib": 2048},
        "timeout_seconds": 60,
        "retry": {"attempts": 1, "interval_seconds": 0},
        "triggers": {"s3": [{"prefix": "incoming/"}], "sqs": True},
        "parameters": {"output_prefix": {"default": "results/"}},
    }
    spec.update(overrides)
    return spec


def wait_for_execution(stack: dict[str, Any], run_id: str, timeout: float = 60) -> dict[str, Any]:
    sfn = stack["session"].client("stepfunctions")
    arn = stack["settings"].state_machine_arn.replace(":stateMachine:", ":execution:") + f":{run_id}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.1)
    raise AssertionError(f"execution {run_id} still running after {timeout}s")


def wait_until(predicate: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def execution_input(stack: dict[str, Any], run_id: str) -> dict[str, Any]:
    sfn = stack["session"].client("stepfunctions")
    arn = stack["settings"].state_machine_arn.replace(":stateMachine:", ":execution:") + f":{run_id}"
    return json.loads(sfn.describe_execution(executionArn=arn)["input"])
