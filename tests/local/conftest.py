"""moto with jobline's adaptations and AWS's contracts installed, nothing tolerated."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from jobline_local import contracts, moto_adaptations
from jobline_local.contracts import throttling
from tests.aws_resources import REGION, TEST_ENVIRONMENT

# One attempt: a refusal reaches the test as the service sent it, never hidden by a retry.
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    for key, value in TEST_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    moto_adaptations.apply()
    contracts.install()
    throttling.configure(None)
    contracts.record.clear()
    contracts.record.tolerated = frozenset()
    with mock_aws(config={"batch": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}):
        yield boto3.session.Session(region_name=REGION)
    throttling.configure(None)


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
