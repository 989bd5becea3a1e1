"""The contracts hold for every test, whichever tests ran before it: tests/conftest.py installs
them (autouse) before each test, at AWS's default rates with full buckets and an empty record.
These tests ask for no fixture; the last one runs the others in a fresh pytest process."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from jobline_local import contracts
from jobline_local.contracts import throttling
from tests.aws_resources import REGION, training_job_request
from tests.cfn import ROOT
from tests.local.conftest import NO_RETRY, refusal


def sagemaker() -> Any:
    return boto3.client("sagemaker", region_name=REGION, config=NO_RETRY)


def test_a_request_aws_refuses_is_refused_in_a_test_that_asks_for_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert contracts.record.validated == set()  # nothing of an earlier test
    with mock_aws():
        # "_" is outside CreateTrainingJob's TrainingJobName pattern; moto itself would accept it.
        error = refusal(sagemaker().create_training_job, **training_job_request("run_1"))
    assert (error["code"], error["status"]) == ("ValidationException", 400)
    assert "Member must satisfy regular expression pattern" in error["message"]


def test_a_configured_rate_holds_until_the_test_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    throttling.configure({"CreateTrainingJob": (0.001, 3)})  # three calls, then (practically) no refill
    with mock_aws():
        for n in range(3):
            sagemaker().create_training_job(**training_job_request(f"t-{n}"))
        assert refusal(sagemaker().create_training_job, **training_job_request("t-3"))["code"] == "ThrottlingException"


def test_every_test_starts_at_aws_default_rates_with_full_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(throttling, "time", SimpleNamespace(monotonic=lambda: 1000.0))  # no refill in this test
    with mock_aws():
        client = sagemaker()
        client.create_training_job(**training_job_request("t-1"))  # the bucket is full again
        # AWS's 1/s (throttling.DEFAULTS), not an earlier test's rate: the second call is throttled.
        with pytest.raises(ClientError, match="ThrottlingException"):
            client.create_training_job(**training_job_request("t-2"))


def test_the_contracts_hold_whichever_test_runs_first() -> None:
    """The tests above, in this order, as the only ones of a fresh pytest process: the refusal in
    the process's first test, the default rates right after a test that changed them."""
    tests = (
        "test_a_request_aws_refuses_is_refused_in_a_test_that_asks_for_nothing",
        "test_a_configured_rate_holds_until_the_test_ends",
        "test_every_test_starts_at_aws_default_rates_with_full_buckets",
    )
    run = subprocess.run(  # noqa: S603 - our own interpreter and test ids
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *(f"{__file__}::{test}" for test in tests)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert "3 passed" in run.stdout
