"""The local stand-ins of jobline_local.services, in-process on moto: each runs the catalog job's
local_command with what the real job gets, moves through the service's statuses, honours its
runtime limit and stop call, and puts events that jobline's own event models accept and map."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from jobline.state_changes import MODELS
from jobline.status import map_glue_state, map_sagemaker_status, map_service_status
from jobline_local import moto_adaptations, services
from jobline_local.activity import Activity
from tests.aws_resources import REGION, create_training_queue
from tests.waiting import wait_until

ACCOUNT = "123456789012"
SCRIPT = (
    "import json, os, sys, time; "
    "env = {k: v for k, v in os.environ.items() if k[:3] in ('JOB', 'SM_')}; "
    "print(json.dumps({'argv': sys.argv[1:], 'env': env})); "
    "time.sleep(float(os.environ.get('JOBLINE_ARG_SECONDS', '0'))); "
    "sys.exit(int(os.environ.get('JOBLINE_ARG_EXIT', '0')))"
)
GLUE_SCRIPT = (
    "import sys, time; a = dict(zip(sys.argv[1::2], sys.argv[2::2])); print(sys.argv[1:]); "
    "time.sleep(float(a.get('--seconds', '0'))); "
    "sys.exit('ValueError: bad row' if a.get('--exit') == '1' else 0)"
)


def catalog(tmp: Path) -> Path:
    training = {
        "AlgorithmSpecification": {"TrainingImage": "x", "TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "OutputDataConfig": {"S3OutputPath": "s3://b/"},
    }
    jobs = [
        {"name": "clean", "backend": {"type": "sagemaker_processing", "image_uri": "x"}},
        {"name": "train", "backend": {"type": "batch_service", "training": training}},
        {"name": "etl", "backend": {"type": "glue"}, "local_command": [sys.executable, "-c", GLUE_SCRIPT]},
    ]
    for job in jobs:
        job.setdefault("local_command", [sys.executable, "-c", SCRIPT])
        job["description"] = "d"
    path = tmp / "jobs.yaml"
    path.write_text(json.dumps({"jobs": jobs}))
    return path


class Clients:
    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)


class Events:
    """Every event the stand-ins put on the default bus, parsed by jobline's own models."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def of(self, detail_type: str) -> list[Any]:
        return [model.detail for kind, model in self.seen if kind == detail_type]


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    moto_adaptations.apply()
    saved = dict(moto_adaptations.hooks)
    events = Events()
    with mock_aws():
        from moto.events.models import EventsBackend

        original = EventsBackend.put_events

        def put_events(self: Any, entries: list[dict[str, Any]]) -> Any:
            for entry in entries:
                event = {
                    "version": "0",
                    "id": "1",
                    "detail-type": entry["DetailType"],
                    "source": entry["Source"],
                    "account": ACCOUNT,
                    "time": "2026-11-21T00:00:00Z",
                    "region": REGION,
                    "resources": entry["Resources"],
                    "detail": json.loads(entry["Detail"]),
                }
                events.seen.append((entry["DetailType"], MODELS[entry["DetailType"]].model_validate(event)))
            return original(self, entries)

        monkeypatch.setattr(EventsBackend, "put_events", put_events)
        args = (
            ACCOUNT,
            REGION,
            catalog(tmp_path),
            tmp_path / "logs",
            {"PATH": os.environ["PATH"]},
            Clients(),
            Activity(),
        )
        stand_ins = {
            "processing": services.LocalProcessing(*args),
            "training": services.LocalServiceJobs(*args),
            "glue": services.LocalGlue(*args, clock_speed=600),
        }
        moto_adaptations.set_hooks(
            processing_job=stand_ins["processing"].submit,
            service_job=stand_ins["training"].submit,
            glue_job_run=stand_ins["glue"].submit,
        )
        try:
            yield {**stand_ins, "events": events, "logs": tmp_path / "logs"}
        finally:
            for stand_in in stand_ins.values():
                stand_in.stop()
            wait_until(lambda: all(s.active == 0 for s in stand_ins.values()), 15)
            moto_adaptations.hooks.update(saved)


# ---------------------------------------------------------------- SageMaker processing
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


# ---------------------------------------------------------------- Batch service jobs
def service_queue(capacity: int = 1) -> str:
    return create_training_queue(boto3.client("batch", region_name=REGION), capacity)


def submit(queue: str, name: str, runtime: int = 60, **env: str) -> str:
    payload = {
        "AlgorithmSpecification": {"TrainingImage": "x"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "HyperParameters": {"epochs": "3"},
        "StoppingCondition": {"MaxRuntimeInSeconds": runtime},
        "Environment": {"JOBLINE_ATTEMPT": "1", **env},
        "Tags": [{"Key": "jobline:run-id", "Value": name}, {"Key": "jobline:attempt", "Value": "1"}],
    }
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


# ---------------------------------------------------------------- Glue job runs
def start_glue(monkeypatch: pytest.MonkeyPatch, **arguments: str) -> str:
    glue = boto3.client("glue", region_name=REGION)
    if "etl" not in glue.list_jobs()["JobNames"]:
        glue.create_job(
            Name="etl",
            Role="r",
            Command={"Name": "glueetl", "ScriptLocation": "s3://b/etl.py"},
            DefaultArguments={"--bucket": "data"},
            ExecutionProperty={"MaxConcurrentRuns": 5},
            NotificationProperty={"NotifyDelayAfter": 1},
            Timeout=1,
        )
    args = {"--jobline_job_name": "etl", "--jobline_attempt": "1", **{f"--{k}": v for k, v in arguments.items()}}
    return glue.start_job_run(JobName="etl", Arguments=args)["JobRunId"]


def glue_ended(run_id: str) -> dict[str, Any]:
    glue = boto3.client("glue", region_name=REGION)
    terminal = ("SUCCEEDED", "FAILED", "TIMEOUT", "STOPPED", "ERROR")
    return wait_until(
        lambda: (run := glue.get_job_run(JobName="etl", RunId=run_id)["JobRun"])["JobRunState"] in terminal and run
    )


def test_glue_runs_succeed_fail_time_out_and_stop(local: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "SECONDS_PER_MINUTE", 1.5)  # Timeout=1 minute -> 1.5 s here
    ok = start_glue(monkeypatch, seconds="0.5")
    failing = start_glue(monkeypatch, exit="1")
    slow = start_glue(monkeypatch, seconds="30")
    stopped = start_glue(monkeypatch, seconds="30")
    wait_until(lambda: local["glue"]._running.get(stopped))
    result = boto3.client("glue", region_name=REGION).batch_stop_job_run(JobName="etl", JobRunIds=[stopped])
    assert result["SuccessfulSubmissions"] == [{"JobName": "etl", "JobRunId": stopped}]

    assert glue_ended(ok)["JobRunState"] == "SUCCEEDED"
    assert glue_ended(failing)["ErrorMessage"] == "ValueError: bad row"
    assert glue_ended(slow)["JobRunState"] == "TIMEOUT"
    assert glue_ended(stopped)["JobRunState"] == "STOPPED"
    argv = (local["logs"] / f"{ok}.log").read_text().splitlines()[0]
    for expected in ("'--JOB_RUN_ID', '" + ok, "'--JOB_NAME', 'etl'", "'--bucket', 'data'", "'--jobline_attempt', '1'"):
        assert expected in argv

    changes = {d.jobRunId: d for d in local["events"].of("Glue Job State Change")}
    assert {r: (changes[r].state, map_glue_state(changes[r].state)[0].value) for r in (ok, failing, slow, stopped)} == {
        ok: ("SUCCEEDED", "SUCCEEDED"),
        failing: ("FAILED", "FAILED"),
        slow: ("TIMEOUT", "TIMEOUT"),
        stopped: ("STOPPED", "STOPPED"),
    }
    assert changes[failing].message == "ValueError: bad row"
    # NotifyDelayAfter (1 minute, at 600x): runs still going after it say so once.
    running = {d.jobRunId for d in local["events"].of("Glue Job Run Status") if d.state == "RUNNING"}
    assert {slow, stopped} <= running
