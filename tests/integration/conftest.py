"""The real statemachines/run.asl.json executed by moto's Step Functions engine, in-process,
against moto's DynamoDB (the run table as template.yaml declares it) and moto's Batch."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.batch_simple.models import BatchSimpleBackend

from jobline.backends.batch import BATCH_TIMEOUT_REASON
from jobline.catalog import parse_catalog
from jobline.deps import Deps
from jobline.settings import Settings
from jobline_local import adaptations
from tests.aws_resources import REGION, TEST_ENVIRONMENT, create_batch, create_run_table, create_state_machine


class BatchScript:
    """Decides how moto's Docker-less Batch ends each attempt: succeed, exit 1 or time out."""

    def __init__(self) -> None:
        self.outcomes: dict[int, str] = {}
        self.submitted: list[dict[str, Any]] = []

    def finish(self, backend: BatchSimpleBackend, job: Any) -> None:
        backend.backend._jobs[job.job_id] = job
        job.job_started_at = datetime.now()
        job.log_stream_name = job._stream_name
        job._start_attempt()
        tags = backend.list_tags_for_resource(job.arn)
        self.submitted.append({"name": job.job_name, "tags": tags, "overrides": job.container_overrides})
        outcome = self.outcomes.get(int(tags.get("jobline:attempt", "1")), "succeed")
        if outcome == "exit1":
            job.exit_code = 1
        elif outcome == "timeout":
            job.job_stopped_reason = BATCH_TIMEOUT_REASON
        job._mark_stopped(success=outcome == "succeed")


@pytest.fixture
def batch_script(monkeypatch: pytest.MonkeyPatch) -> BatchScript:
    script = BatchScript()
    monkeypatch.setattr(
        BatchSimpleBackend, "_mark_job_as_finished", lambda self, include_start_attempt, job: script.finish(self, job)
    )
    return script


def _parked(thread: threading.Thread) -> bool:
    """A stopped execution's task waiting for a token makes no call again (its token never comes);
    nor do the threads that wait for the one waiting (each of them checked too)."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        code = frame.f_code
        if code.co_name in ("_eval_wait_for_task_token", "_evaluate_with_timeout") or (
            code.co_name == "eval" and code.co_filename.endswith("program/program.py")
        ):
            return True
        frame = frame.f_back
    return False


@contextmanager
def executions_end_with_the_test(session: Any, machine: str) -> Iterator[None]:
    """Stop the executions a test leaves running and wait for their engine threads: one left going
    keeps calling AWS from its thread and lands in the next test's moto (same table, and the same
    run id for the same trigger), moving that test's row under it."""
    from moto.stepfunctions.parser.utils import TMP_THREADS

    first = len(TMP_THREADS)
    yield
    sfn = session.client("stepfunctions")
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine, statusFilter="RUNNING"):
        for execution in page["executions"]:
            sfn.stop_execution(executionArn=execution["executionArn"], error="TestEnded", cause="the test ended")
    deadline = time.monotonic() + 60
    for thread in TMP_THREADS[first:]:
        while thread.is_alive() and not _parked(thread):
            assert time.monotonic() < deadline, f"an execution's thread {thread.name} still runs after its test"
            thread.join(timeout=0.05)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, batch_script: BatchScript) -> Iterator[dict[str, Any]]:
    for key, value in TEST_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    adaptations.install()
    with mock_aws(config={"batch": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}):
        session = boto3.session.Session(region_name=REGION)
        create_run_table(session.client("dynamodb"), "runs")
        machine = create_state_machine(session.client("stepfunctions"), session.client("iam"), "runs")
        queue, definition = create_batch(session)
        session.client("s3").create_bucket(Bucket="run-data")
        dlq = session.client("sqs").create_queue(QueueName="event-dlq")["QueueUrl"]
        settings = Settings(
            run_table_name="runs",
            state_machine_arn=machine,
            event_dlq_url=dlq,
            run_data_bucket="run-data",
            job_queue_on_demand_arn=queue,
            job_queue_spot_arn=queue,
            default_job_definition_arn=definition,
        )
        with executions_end_with_the_test(session, machine):
            yield {"session": session, "settings": settings, "queue": queue}


def make_deps(stack: dict[str, Any], jobs: list[dict[str, Any]]) -> Deps:
    return Deps.build(stack["settings"], parse_catalog({"jobs": jobs}), session=stack["session"])


def wait_for_execution(stack: dict[str, Any], run_id: str, timeout: float = 60) -> dict[str, Any]:
    sfn = stack["session"].client("stepfunctions")
    arn = stack["settings"].state_machine_arn.replace(":stateMachine:", ":execution:") + f":{run_id}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.1)
    raise AssertionError(f"execution {run_id} still running after {timeout}s")


def execution_input(stack: dict[str, Any], run_id: str) -> dict[str, Any]:
    sfn = stack["session"].client("stepfunctions")
    arn = stack["settings"].state_machine_arn.replace(":stateMachine:", ":execution:") + f":{run_id}"
    return json.loads(sfn.describe_execution(executionArn=arn)["input"])
