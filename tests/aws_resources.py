"""What the tests create in moto: resources shaped as template.yaml declares them, the
environment every function reads, and catalog entries to start from."""

from __future__ import annotations

import json
from typing import Any

from jobline.catalog import Catalog
from jobline_tools import run_machines
from tests.cfn import resource

REGION = "us-east-1"
TEST_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "jobline",
    "POWERTOOLS_METRICS_NAMESPACE": "Jobline",
}
# A CreateTrainingJob request without its name, as a batch_service job declares it.
TRAINING_REQUEST = {
    "AlgorithmSpecification": {
        "TrainingImage": "123.dkr.ecr.us-east-1.amazonaws.com/train:1",
        "TrainingInputMode": "File",
    },
    "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
    "OutputDataConfig": {"S3OutputPath": "s3://run-data/models/"},
}
SAGEMAKER_ROLE = "arn:aws:iam::123456789012:role/sm"


def training_job_request(name: str, **members: Any) -> dict[str, Any]:
    """A complete CreateTrainingJob request - what SageMaker takes, and what a Batch service job's
    serviceRequestPayload is: TRAINING_REQUEST with its name and role, and `members` on top."""
    return {"TrainingJobName": name, "RoleArn": SAGEMAKER_ROLE, **TRAINING_REQUEST, **members}


def create_run_table(ddb: Any, name: str) -> None:
    props = resource("RunTable")["Properties"]
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
    )


STACK = "jobline"


def machine_prefix(sfn: Any) -> str:
    """Settings.state_machine_prefix of machines named as template.yaml names them (`<stack>-run-`)."""
    region = sfn.meta.region_name
    return f"arn:aws:states:{region}:123456789012:stateMachine:{STACK}-{run_machines.NAME_PREFIX}"


def create_run_machines(sfn: Any, iam: Any, table: str, catalog: Catalog) -> str:
    """The generated run state machine of every retry policy of `catalog` not created yet, as
    template.yaml deploys them (DefinitionSubstitutions applied); returns Settings.state_machine_prefix."""
    existing = {machine["name"] for machine in sfn.list_state_machines()["stateMachines"]}
    for policy, job in run_machines.policies(catalog).items():
        name = f"{STACK}-{run_machines.NAME_PREFIX}{policy}"
        if name in existing:
            continue
        definition = run_machines.definition_text(job).replace("${RunTableName}", table)
        sfn.create_state_machine(name=name, definition=definition, roleArn=_role(iam, "run-machines"), type="STANDARD")
    return machine_prefix(sfn)


def _role(iam: Any, name: str) -> str:
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"])


def create_pass_machines(sfn: Any, iam: Any, catalog: Catalog) -> str:
    """A one-Pass-state machine under each policy's run machine name, for tests that only need
    executions to start; returns Settings.state_machine_prefix."""
    role = _role(iam, "pass-machines")
    definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    for policy in run_machines.policies(catalog):
        sfn.create_state_machine(
            name=f"{STACK}-{run_machines.NAME_PREFIX}{policy}", definition=definition, roleArn=role
        )
    return machine_prefix(sfn)


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


def create_training_queue(batch: Any, capacity: int = 1) -> str:
    """A SAGEMAKER_TRAINING service environment and its job queue, like TrainingJobQueue."""
    environment = batch.create_service_environment(
        serviceEnvironmentName="training",
        serviceEnvironmentType="SAGEMAKER_TRAINING",
        capacityLimits=[{"maxCapacity": capacity, "capacityUnit": "NUM_INSTANCES"}],
    )["serviceEnvironmentArn"]
    return batch.create_job_queue(
        jobQueueName="training",
        jobQueueType="SAGEMAKER_TRAINING",
        priority=1,
        serviceEnvironmentOrder=[{"order": 1, "serviceEnvironment": environment}],
    )["jobQueueArn"]


def job_spec(name: str = "word-count", **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "description": "test job",
        "backend": {"type": "batch", "command": ["python", "-c", "print(1)"], "vcpu": 1, "memory_mib": 2048},
        "timeout_seconds": 60,
        "retry": {"attempts": 1, "interval_seconds": 1},
        "triggers": {"s3": [{"prefix": "incoming/"}], "sqs": True},
        "parameters": {"output_prefix": {"default": "results/"}},
    }
    spec.update(overrides)
    return spec


def sqs_record(body: Any, message_id: str, queue_arn: str) -> dict[str, Any]:
    """One SQS message as Lambda's event source hands it over (every attribute SQS sends, which
    Powertools' SqsRecordModel requires); a body that is not text is sent as its JSON."""
    return {
        "messageId": message_id,
        "receiptHandle": f"receipt-{message_id}",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1764547200000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1764547200000",
        },
        "messageAttributes": {},
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3],
    }
