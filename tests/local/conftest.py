"""Tests of the local stack's parts, in-process on moto with jobline's adaptations (and, for the contract
tests, AWS's contracts) installed."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from jobline.backends import EVENT_MODELS
from jobline_local import adaptations, contracts
from jobline_local.activity import Activity
from jobline_local.emulated.batch_service_compute import LocalServiceJobs
from jobline_local.emulated.glue import LocalGlue
from jobline_local.emulated.sagemaker_processing import LocalProcessing
from tests.aws_resources import REGION, TEST_ENVIRONMENT
from tests.local.moto_support import ACCOUNT
from tests.waiting import wait_until


@pytest.fixture(autouse=True)
def adapted(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The adaptations installed, and the hooks as they were after the test."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    adaptations.install()
    saved = dict(adaptations.hooks)
    yield adaptations.hooks
    adaptations.hooks.update(saved)


# ---------------------------------------------------------------- the local compute of the backends
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
                events.seen.append((entry["DetailType"], EVENT_MODELS[entry["DetailType"]].model_validate(event)))
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
            "processing": LocalProcessing(*args),
            "training": LocalServiceJobs(*args),
            "glue": LocalGlue(*args, clock_speed=600),
        }
        adaptations.set_hooks(
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


# ---------------------------------------------------------------- AWS's contracts
# One attempt: a refusal reaches the test as the service sent it, never hidden by a retry.
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    for key, value in TEST_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    adaptations.install()
    # The contracts are on for every test (tests/conftest.py); the contract tests let nothing through.
    contracts.record.tolerated = frozenset()
    with mock_aws(config={"batch": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}):
        yield boto3.session.Session(region_name=REGION)


def client(session: boto3.session.Session, service: str) -> Any:
    return session.client(service, config=NO_RETRY)


def refusal(call: Any, **params: Any) -> dict[str, Any]:
    """The error a call is answered with: code, message and HTTP status."""
    with pytest.raises(ClientError) as caught:
        call(**params)
    error = caught.value.response
    return {
        "code": error["Error"]["Code"],
        "message": error["Error"]["Message"],
        "status": error["ResponseMetadata"]["HTTPStatusCode"],
    }


@pytest.fixture
def dynamodb_table() -> Iterator[Any]:
    """A DynamoDB client on moto with the adaptations installed and a table `t` keyed by `pk`."""
    adaptations.install()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client
