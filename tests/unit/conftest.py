"""Handlers invoked as Lambda invokes them, against moto (no state machine execution here)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from jobline import deps as deps_module
from jobline import settings as settings_module
from jobline.catalog import parse_catalog
from jobline.dal import RunTable, _to_item
from tests.aws_resources import REGION, TEST_ENVIRONMENT, create_pass_machines, create_run_table, job_spec, sqs_record
from tests.cfn import ROOT

EVENTS = ROOT / "events"


def load_handler(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"handler_{name}", ROOT / "functions" / name / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def queued(*deliveries: Any) -> dict[str, Any]:
    """Rule deliveries as the intake queue's event source hands them over: an SQS batch whose
    bodies are the rule target's input (EventBridge sends it as the message body)."""
    queue = f"arn:aws:sqs:{REGION}:123456789012:intake"
    records = [sqs_record(delivery, f"intake-{n}", queue) for n, delivery in enumerate(deliveries)]
    return {"Records": records}


class LambdaContext:
    function_name = "test"
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:test"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000  # the stack's function timeout


TEST_JOBS = [
    job_spec("csv-word-count", triggers={"s3": [{"prefix": "incoming/", "suffix": ".csv"}], "sqs": True}),
    job_spec(
        "nightly-report",
        parameters={"day": {"default": ""}},
        triggers={
            "schedule": [{"name": "nightly", "expression": "cron(0 2 * * ? *)"}],
            "bus": [
                {
                    "pattern": {"source": ["acme.reports"], "detail-type": ["Report Requested"]},
                    "idempotency_key": "detail.request_id",
                    "arguments": {"day": "detail.day"},
                }
            ],
        },
    ),
]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    catalog = tmp_path / "jobs.yaml"
    catalog.write_text(yaml.safe_dump({"jobs": TEST_JOBS}))
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        create_run_table(session.client("dynamodb"), "runs")
        prefix = create_pass_machines(
            session.client("stepfunctions"), session.client("iam"), parse_catalog({"jobs": TEST_JOBS})
        )
        dlq = session.client("sqs").create_queue(QueueName="event-dlq")["QueueUrl"]
        session.client("s3").create_bucket(Bucket="run-data")
        values = {
            **TEST_ENVIRONMENT,
            "RUN_TABLE_NAME": "runs",
            "STATE_MACHINE_PREFIX": prefix,
            "EVENT_DLQ_URL": dlq,
            "RUN_DATA_BUCKET": "run-data",
            "JOB_QUEUE_ON_DEMAND_ARN": "arn:aws:batch:us-east-1:123456789012:job-queue/on-demand",
            "JOB_QUEUE_SPOT_ARN": "arn:aws:batch:us-east-1:123456789012:job-queue/spot",
            "DEFAULT_JOB_DEFINITION_ARN": "arn:aws:batch:us-east-1:123456789012:job-definition/default:1",
            "CATALOG_PATH": str(catalog),
        }
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        settings_module.get_settings.cache_clear()
        deps_module.get_deps.cache_clear()
        yield {"session": session, "prefix": prefix, "dlq": dlq}
        settings_module.get_settings.cache_clear()
        deps_module.get_deps.cache_clear()


def put_row(table: RunTable, run_id: str, **fields: Any) -> dict[str, Any]:
    """Put the run's row back with `fields` changed: a test's setup of a state it needs, written
    directly (no writer of the stack rewrites a whole row). Returns the row as put."""
    row = table.get_run(run_id)
    assert row is not None, run_id
    row.update(fields)
    table._client.put_item(TableName=table._table, Item=_to_item(row))
    return row


def dlq_messages(env: dict[str, Any]) -> list[dict[str, Any]]:
    sqs = env["session"].client("sqs")
    messages = sqs.receive_message(QueueUrl=env["dlq"], MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def run_executions(env: dict[str, Any]) -> list[dict[str, Any]]:
    """The executions of every run state machine (one per retry policy)."""
    sfn = env["session"].client("stepfunctions")
    machines = [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]]
    return [
        execution
        for machine in machines
        if machine.startswith(env["prefix"])
        for execution in sfn.list_executions(stateMachineArn=machine)["executions"]
    ]


def executions(env: dict[str, Any]) -> list[str]:
    return [e["name"] for e in run_executions(env)]
