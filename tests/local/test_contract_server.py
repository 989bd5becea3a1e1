"""The contracts hold in server mode too: a request over HTTP to moto's WSGI app (as the local
stack serves it, and as moto's Step Functions engine calls it) is checked and refused the same way."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

from jobline_local import adaptations, contracts
from tests.aws_resources import SAGEMAKER_ROLE, TRAINING_REQUEST, create_training_queue, training_job_request
from tests.local.conftest import NO_RETRY


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    adaptations.install()
    contracts.record.tolerated = frozenset()  # installed for every test (tests/conftest.py); none let through
    server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_the_server_refuses_a_service_job_without_training_job_name(endpoint: str) -> None:
    batch = boto3.client("batch", region_name="us-east-1", endpoint_url=endpoint, config=NO_RETRY)
    queue = create_training_queue(batch)
    payload = {**TRAINING_REQUEST, "RoleArn": SAGEMAKER_ROLE}
    params = {"jobName": "train-1", "jobQueue": queue, "serviceJobType": "SAGEMAKER_TRAINING"}
    with pytest.raises(ClientError) as caught:
        batch.submit_service_job(**params, serviceRequestPayload=json.dumps(payload))
    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("ClientException", 400)
    assert "serviceRequestPayload.TrainingJobName" in error["Error"]["Message"]
    named = json.dumps(training_job_request("train-1"))
    assert batch.submit_service_job(**params, serviceRequestPayload=named)["jobName"] == "train-1"
