"""Every request jobline sends, checked against AWS's models: the integration tests (the real
ASL on moto's engine, every backend), the unit tests (every handler) and jobline_scenarios.py
run with the contracts installed, in a separate pytest; what they sent must cover every
operation jobline calls, and break AWS's models only as KNOWN_JOBLINE_VIOLATIONS lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cfn import ROOT
from tests.local.aws_contracts import KNOWN_JOBLINE_VIOLATIONS, RECORD_ENV

pytestmark = pytest.mark.integration

# Every AWS operation jobline calls (docs/CONTRACTS.md lists where).
PYTHON_OPERATIONS = {
    ("dynamodb", "GetItem"),
    ("dynamodb", "PutItem"),
    ("dynamodb", "UpdateItem"),
    ("dynamodb", "Query"),
    ("dynamodb", "BatchGetItem"),
    ("s3", "GetObject"),
    ("s3", "PutObject"),
    ("stepfunctions", "StartExecution"),
    ("stepfunctions", "StopExecution"),
    ("stepfunctions", "DescribeExecution"),
    ("stepfunctions", "SendTaskSuccess"),
    ("stepfunctions", "SendTaskFailure"),
    ("batch", "SubmitJob"),
    ("batch", "SubmitServiceJob"),
    ("sagemaker", "CreateProcessingJob"),
    ("glue", "StartJobRun"),
    ("batch", "DescribeJobs"),
    ("batch", "DescribeServiceJob"),
    ("batch", "TerminateJob"),
    ("batch", "TerminateServiceJob"),
    ("batch", "ListServiceJobs"),
    ("sagemaker", "DescribeProcessingJob"),
    ("glue", "GetJobRun"),
    ("glue", "GetJobRuns"),
    ("events", "PutEvents"),
    ("sqs", "SendMessage"),
    ("sns", "Publish"),
}
# statemachines/run-*.asl.json: each Task Resource, and what its integration calls on AWS.
ASL_OPERATIONS = {
    ("sqs", "SendMessage"),  # sqs:sendMessage.waitForTaskToken (Attempt)
    ("dynamodb", "UpdateItem"),  # dynamodb:updateItem, aws-sdk:dynamodb:updateItem.waitForTaskToken
}


def test_the_asl_operations_are_every_task_resource_of_the_state_machines() -> None:
    resources = {
        state["Resource"]
        for path in (ROOT / "statemachines").glob("run-*.asl.json")
        for state in json.loads(path.read_text())["States"].values()
        if state["Type"] == "Task"
    }
    assert resources == {
        "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "arn:aws:states:::dynamodb:updateItem",
        "arn:aws:states:::aws-sdk:dynamodb:updateItem.waitForTaskToken",
    }


def test_every_request_jobline_sends_meets_aws_models_except_the_known_violations(tmp_path: Path) -> None:
    record = tmp_path / "contracts.jsonl"
    env = {**os.environ, RECORD_ENV: str(record), "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/integration",
            "tests/unit",
            "tests/local/jobline_scenarios.py",
            # The property tests send thousands of the same UpdateItems the other tests send (and the
            # autouse contracts check them in the main run): nothing they add to what is covered.
            "--ignore=tests/unit/test_status.py",
            "--ignore=tests/unit/test_status_ties.py",
            "--ignore=tests/unit/test_state_change_races.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:]
    validated, violations, unvalidated = set(), set(), set()
    for line in record.read_text().splitlines():
        seen = json.loads(line)
        validated |= {tuple(op) for op in seen["validated"]}
        violations |= {tuple(v) for v in seen["violations"]}
        unvalidated |= {tuple(u) for u in seen["unvalidated"]}
    assert unvalidated == set()  # every request to an AWS service was mapped to its model and checked
    assert (PYTHON_OPERATIONS | ASL_OPERATIONS) - validated == set()
    assert violations == KNOWN_JOBLINE_VIOLATIONS
