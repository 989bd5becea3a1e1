"""What the backend tests share: a stack's settings, one-job catalogs, a run table on moto, and
AWS's documented example events (events/) parsed as the state change handler parses them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from jobline.catalog import parse_catalog
from jobline.dal import RunTable
from jobline.runs import execution_input, new_row
from jobline.settings import Settings
from jobline.state_changes import parse_event
from jobline.triggers import RunRequest, Trigger
from tests.aws_resources import TRAINING_REQUEST, create_run_table
from tests.unit.conftest import sample

SETTINGS = Settings(
    run_table_name="runs",
    state_machine_prefix="arn:aws:states:us-east-1:123456789012:stateMachine:jobline-run-",
    event_dlq_url="https://dlq",
    run_data_bucket="data",
    service_job_queue_arn="arn:aws:batch:us-east-1:123456789012:job-queue/training",
    sagemaker_role_arn="arn:aws:iam::123456789012:role/sagemaker",
    glue_job_name="jobline-example",
)
BACKENDS: dict[str, dict[str, Any]] = {
    "train-model": {"type": "batch_service", "training": TRAINING_REQUEST},
    "clean-data": {"type": "sagemaker_processing", "image_uri": "123.dkr.ecr.us-east-1.amazonaws.com/clean:1"},
    "glue-etl": {"type": "glue", "arguments": {"--mode": "full"}, "worker_type": "G.2X", "number_of_workers": 4},
}


def job(name: str, backend: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": "d", "backend": backend or BACKENDS[name], "triggers": {"sqs": True}, **extra}


def request(name: str, **extra: Any) -> RunRequest:
    catalog = parse_catalog({"jobs": [job(name, **extra)]})
    return RunRequest(job=catalog.jobs[0], trigger=Trigger(type="manual", key="k", source="test", event={"a": 1}))


def submit_params(
    req: RunRequest, arguments: dict[str, str] | None = None, settings: Settings = SETTINGS
) -> dict[str, Any]:
    """The backend's per-run submit request, as the execution input carries it to the submitter."""
    payload = execution_input(req.job, req.run_id, arguments or {}, {"JOBLINE_TRIGGER_EVENT": "{}"}, settings)
    return payload["request"]["params"]


def sent_requests(client: Any, operation: str) -> list[dict[str, Any]]:
    """Every request `client` sends for `operation` from now on, as it goes out (after boto3 has
    built it from the caller's arguments; the contracts check it against botocore's model)."""
    sent: list[dict[str, Any]] = []
    client.meta.events.register(
        f"provide-client-params.{client.meta.service_model.service_name}.{operation}",
        lambda params, **_: sent.append(dict(params)),
    )
    return sent


def start_row(table: RunTable, name: str, run_id: str, **fields: Any) -> None:
    row = new_row(request(name), SETTINGS, "2026-11-21T00:00:00.000Z")
    table.create_run({**row, "run_id": run_id, "attempt": 1, "status": "STARTING", "status_rank": 10, **fields})


def parse(event: dict[str, Any] | str) -> Any:
    """An event (or the name of a sample in events/) as the state change handler parses it."""
    event = sample(event) if isinstance(event, str) else event
    return parse_event(event)


@pytest.fixture
def table() -> Iterator[RunTable]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_run_table(client, "runs")
        yield RunTable(client, "runs")
