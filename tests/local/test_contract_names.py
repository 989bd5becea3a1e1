"""Name rules: those AWS documents outside the models (Batch job names, execution names) and
those the models carry (SageMaker job names, Glue run ids)."""

from __future__ import annotations

import pytest
from boto3.session import Session

from tests.aws_resources import create_batch
from tests.local.conftest import client, refusal

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:jobline-run"


@pytest.mark.parametrize("name", ["-starts-with-hyphen", "has space", "a" * 129, "dots.not.allowed"])
def test_batch_refuses_a_bad_job_name(aws: Session, name: str) -> None:
    batch = client(aws, "batch")
    queue, definition = create_batch(aws)
    error = refusal(batch.submit_job, jobName=name, jobQueue=queue, jobDefinition=definition)
    assert (error["code"], error["status"]) == ("ClientException", 400)
    assert "at 'jobName'" in error["message"]


def test_batch_accepts_a_valid_job_name(aws: Session) -> None:
    queue, definition = create_batch(aws)
    name = "A" + "b_-9" * 31 + "xyz"  # 128 characters
    job = client(aws, "batch").submit_job(jobName=name, jobQueue=queue, jobDefinition=definition)
    assert job["jobName"] == name


@pytest.mark.parametrize("name", ["has space", "a:b", "a/b", "tab\tname", "x" * 81, "ctl\x7f"])
def test_step_functions_refuses_a_bad_execution_name_with_invalid_name(aws: Session, name: str) -> None:
    error = refusal(client(aws, "stepfunctions").start_execution, stateMachineArn=MACHINE, name=name)
    assert (error["code"], error["status"]) == ("InvalidName", 400)


def test_step_functions_lets_a_valid_execution_name_through(aws: Session) -> None:
    error = refusal(client(aws, "stepfunctions").start_execution, stateMachineArn=MACHINE, name="run-1_é")
    assert error["code"] == "StateMachineDoesNotExist"


@pytest.mark.parametrize(
    ("operation", "member"),
    [("describe_training_job", "TrainingJobName"), ("describe_processing_job", "ProcessingJobName")],
)
@pytest.mark.parametrize("name", ["x" * 64, "under_score", "-lead"])
def test_sagemaker_refuses_a_bad_job_name(aws: Session, operation: str, member: str, name: str) -> None:
    error = refusal(getattr(client(aws, "sagemaker"), operation), **{member: name})
    assert (error["code"], error["status"]) == ("ValidationException", 400)
    assert f"at '{member}'" in error["message"]


def test_glue_refuses_a_run_id_over_255_characters(aws: Session) -> None:
    glue = client(aws, "glue")
    error = refusal(glue.batch_stop_job_run, JobName="job", JobRunIds=["r" * 256])
    assert (error["code"], error["status"]) == ("InvalidInputException", 400)
    assert "JobRunIds[0]" in error["message"]
