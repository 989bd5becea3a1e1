"""SageMaker processing jobs (emulated.sagemaker_processing): the API adaptation against moto's
original, and the local compute's statuses, limits, stops and events."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from jobline.backends.sagemaker_processing import map_sagemaker_status
from tests.aws_resources import REGION
from tests.local.moto_support import ACCOUNT, PROCESSING_REQUEST, client, original
from tests.waiting import wait_until


def test_sagemaker_processing_jobs(monkeypatch: pytest.MonkeyPatch, adapted: dict[str, Any]) -> None:
    from moto.sagemaker.responses import SageMakerResponse

    with mock_aws():
        sagemaker = client("sagemaker")
        monkeypatch.setattr(
            SageMakerResponse, "create_processing_job", original(SageMakerResponse, "create_processing_job")
        )
        sagemaker.create_processing_job(**PROCESSING_REQUEST)
        sagemaker.create_processing_job(**PROCESSING_REQUEST)  # moto takes a name twice
        pristine = sagemaker.describe_processing_job(ProcessingJobName="p-1")
        assert "Environment" not in pristine, "moto now keeps a processing job's Environment"
        monkeypatch.undo()

        handed: list[Any] = []
        adapted["processing_job"] = handed.append
        request = {**PROCESSING_REQUEST, "ProcessingJobName": "p-2"}
        sagemaker.create_processing_job(**request)
        with pytest.raises(ClientError, match="must be unique") as caught:
            sagemaker.create_processing_job(**request)
        assert caught.value.response["Error"]["Code"] == "ResourceInUse"
        job = sagemaker.describe_processing_job(ProcessingJobName="p-2")
        assert (job["ProcessingJobStatus"], job["Environment"]) == ("InProgress", {"A": "1"})
        assert job["ProcessingResources"] == PROCESSING_REQUEST["ProcessingResources"]
        assert "ProcessingEndTime" not in job
        assert "Tags" not in job  # not a member of DescribeProcessingJob's answer
        assert handed[0].processing_job_name == "p-2"
        sagemaker.stop_processing_job(ProcessingJobName="p-2")
        assert sagemaker.describe_processing_job(ProcessingJobName="p-2")["ProcessingJobStatus"] == "Stopping"
        with pytest.raises(ClientError, match="is in status Stopping"):
            sagemaker.stop_processing_job(ProcessingJobName="p-2")


# ---------------------------------------------------------------- the local compute
def create_processing(name: str, runtime: int = 60, **env: str) -> None:
    boto3.client("sagemaker", region_name=REGION).create_processing_job(
        ProcessingJobName=name,
        AppSpecification={"ImageUri": "x", "ContainerArguments": ["--mode", "fast"]},
        Environment={"JOBLINE_JOB_NAME": "clean", "JOBLINE_ATTEMPT": "1", **env},
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/sm",
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        StoppingCondition={"MaxRuntimeInSeconds": runtime},
        Tags=[{"Key": "jobline:run-id", "Value": name}],
    )


def processing_status(name: str) -> dict[str, Any]:
    return boto3.client("sagemaker", region_name=REGION).describe_processing_job(ProcessingJobName=name)


def ended(name: str, statuses: tuple[str, ...] = ("Completed", "Failed", "Stopped")) -> dict[str, Any]:
    return wait_until(lambda: (job := processing_status(name))["ProcessingJobStatus"] in statuses and job)


def test_processing_jobs_run_fail_time_out_and_stop(local: dict[str, Any]) -> None:
    create_processing("clean-ok")
    job = ended("clean-ok")
    assert job["ProcessingJobStatus"] == "Completed"
    printed = json.loads((local["logs"] / "clean-ok.log").read_text().splitlines()[0])
    assert printed["argv"] == ["--mode", "fast"]  # the container's arguments
    assert printed["env"]["JOBLINE_ATTEMPT"] == "1"
    assert job["ProcessingStartTime"] <= job["ProcessingEndTime"]

    create_processing("clean-exit", JOBLINE_ARG_EXIT="3")
    assert ended("clean-exit")["FailureReason"].endswith("exit code: 3")

    create_processing("clean-slow", runtime=1, JOBLINE_ARG_SECONDS="30")
    slow = ended("clean-slow")
    assert slow["ProcessingJobStatus"] == "Stopped"
    assert map_sagemaker_status("Stopped", slow["FailureReason"])[0].value == "TIMEOUT"

    create_processing("clean-stop", JOBLINE_ARG_SECONDS="30")
    wait_until(lambda: local["processing"]._running.get("clean-stop"))
    boto3.client("sagemaker", region_name=REGION).stop_processing_job(ProcessingJobName="clean-stop")
    assert ended("clean-stop")["ProcessingJobStatus"] == "Stopped"
    assert "FailureReason" not in processing_status("clean-stop")

    details = local["events"].of("SageMaker Processing Job State Change")
    by_job = {}
    for detail in details:
        by_job.setdefault(detail.ProcessingJobName, []).append(detail.ProcessingJobStatus)
    assert by_job == {
        "clean-ok": ["InProgress", "Completed"],
        "clean-exit": ["InProgress", "Failed"],
        "clean-slow": ["InProgress", "Stopped"],
        "clean-stop": ["InProgress", "Stopped"],
    }
