"""Requests are checked against botocore's model of their operation, on every call moto
receives, and refused with the error the service returns for invalid input."""

from __future__ import annotations

import botocore.session
import pytest
from boto3.session import Session
from botocore.model import StringShape

from jobline_local.contracts import patterns, validation
from tests.local.conftest import client, refusal

JOBLINE_SERVICES = ("batch", "dynamodb", "events", "glue", "s3", "sagemaker", "sns", "sqs", "stepfunctions")


def test_every_pattern_of_the_services_jobline_calls_is_translated() -> None:
    session = botocore.session.get_session()
    for service in JOBLINE_SERVICES:
        model = session.get_service_model(service)
        for name in model.shape_names:
            pattern = model.shape_for(name).metadata.get("pattern")
            if pattern is not None:
                patterns.compiled(pattern)
    assert patterns.untranslatable == {}


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", "train-1", True),
        ("[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", "train_1", False),  # whole value, as Java's matches()
        ("\\p{Print}+", "abc", True),
        ("\\p{Print}+", "a\x01", False),
        ("[\\u0020-\\uD7FF\\uE000-\\uFFFD\\uD800\\uDC00-\\uDBFF\\uDFFF\\t]*", "emoji \U0001f600", True),
        ("[\\u0020-\\uD7FF\\uE000-\\uFFFD\\uD800\\uDC00-\\uDBFF\\uDFFF\\t]*", "new\nline", False),
        ("arn:[\\p{Alnum}\\-]+:lambda:.*", "arn:aws:lambda:x", True),
        ("([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)${1,128}", "key one", True),
    ],
)
def test_java_patterns_translate(pattern: str, value: str, matches: bool) -> None:
    compiled = patterns.compiled(pattern)
    assert compiled is not None
    assert (compiled.fullmatch(value) is not None) is matches


def test_an_untranslatable_pattern_is_a_violation_not_a_pass() -> None:
    java_only = "[a-z&&[^q]]+"  # Java's class intersection: no equivalent, so never guessed at
    shape = StringShape("Odd", {"type": "string", "pattern": java_only})
    errors = validation._StrictValidator().validate("abc", shape)
    assert [(reason, details["pattern"]) for reason, _, details in errors._errors] == [
        ("untranslatable pattern", java_only)
    ]
    assert "intersection" in patterns.untranslatable.pop(java_only)


@pytest.mark.parametrize(
    ("params", "member", "rule"),
    [
        ({"TrainingJobName": "x", "AlgorithmSpecification": {}}, "RoleArn", "required"),
        ({"TrainingJobName": "x" * 64}, "TrainingJobName", "max"),
        ({"TrainingJobName": "no_underscores"}, "TrainingJobName", "pattern"),
        ({"StoppingCondition": {"MaxRuntimeInSeconds": 0}}, "StoppingCondition.MaxRuntimeInSeconds", "min"),
        ({"ResourceConfig": {"InstanceType": "ml.nope", "VolumeSizeInGB": 1}}, "ResourceConfig.InstanceType", "enum"),
        ({"ResourceConfig": {"VolumeSizeInGB": "30"}}, "ResourceConfig.VolumeSizeInGB", "type"),
    ],
)
def test_the_validator_names_the_member_and_the_rule(params: dict, member: str, rule: str) -> None:
    found = {(v.member, v.rule) for v in validation.violations_of("sagemaker", "CreateTrainingJob", params)}
    assert (member, rule) in found


def test_sagemaker_refuses_a_bad_name_with_validation_exception(aws: Session) -> None:
    sagemaker = client(aws, "sagemaker")
    error = refusal(sagemaker.describe_processing_job, ProcessingJobName="bad_name")
    assert (error["code"], error["status"]) == ("ValidationException", 400)
    assert (
        "'ProcessingJobName' failed to satisfy constraint: Member must satisfy regular expression" in error["message"]
    )
    # A valid name reaches moto, which (like SageMaker) does not find the job.
    assert (
        "Could not find processing job"
        in refusal(sagemaker.describe_processing_job, ProcessingJobName="good-name")["message"]
    )


def test_glue_refuses_with_invalid_input_exception(aws: Session) -> None:
    glue = client(aws, "glue")
    error = refusal(glue.get_job_run, JobName="job", RunId="r" * 256)
    assert (error["code"], error["status"]) == ("InvalidInputException", 400)
    assert "'RunId'" in error["message"]
    assert "less than or equal to 255" in error["message"]
    assert refusal(glue.get_job_run, JobName="job", RunId="r" * 255)["code"] == "EntityNotFoundException"


def test_dynamodb_refuses_with_validation_exception(aws: Session) -> None:
    dynamodb = client(aws, "dynamodb")
    error = refusal(dynamodb.get_item, TableName="t" * 1025, Key={"pk": {"S": "a"}})
    assert (error["code"], error["status"]) == ("ValidationException", 400)
    assert "'TableName'" in error["message"]
    assert refusal(dynamodb.get_item, TableName="t", Key={"pk": {"S": "a"}})["code"] == "ResourceNotFoundException"


def test_batch_refuses_with_client_exception(aws: Session) -> None:
    batch = client(aws, "batch")
    error = refusal(batch.list_jobs, jobQueue="q", jobStatus="DONE")
    assert (error["code"], error["status"]) == ("ClientException", 400)
    assert "Member must satisfy enum value set" in error["message"]
    assert "does not exist" in refusal(batch.list_jobs, jobQueue="q", jobStatus="SUCCEEDED")["message"]


def test_step_functions_refuses_with_validation_exception(aws: Session) -> None:
    sfn = client(aws, "stepfunctions")
    arn = "arn:aws:states:us-east-1:123456789012:execution:m:" + "e" * 300
    error = refusal(sfn.describe_execution, executionArn=arn)
    assert (error["code"], error["status"]) == ("ValidationException", 400)
    assert "'executionArn'" in error["message"]


def test_every_validated_call_is_recorded(aws: Session) -> None:
    from jobline_local.contracts import record

    client(aws, "sqs").list_queues()
    assert ("sqs", "ListQueues") in record.validated


def test_s3_refuses_with_invalid_argument(aws: Session) -> None:
    s3 = client(aws, "s3")
    s3.create_bucket(Bucket="run-data")
    error = refusal(s3.put_object, Bucket="run-data", Key="k", Body=b"x", StorageClass="CHEAP")
    assert (error["code"], error["status"]) == ("InvalidArgument", 400)
    assert "'StorageClass'" in error["message"]
    s3.put_object(Bucket="run-data", Key="k", Body=b"x", StorageClass="STANDARD")
    assert s3.get_object(Bucket="run-data", Key="k")["Body"].read() == b"x"
