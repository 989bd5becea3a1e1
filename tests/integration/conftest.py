"""The generated run state machines (jobline_tools.run_machines) executed by moto's Step Functions
engine, in-process, against moto's DynamoDB (the run table as template.yaml declares it) and SQS
(the submit queues). The tests play the submitter and the state change handler: they receive the
attempt from the submit queue and answer its task token as the event handler does."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from jobline.catalog import Job, parse_catalog
from jobline.deps import Deps
from jobline.runs import execution_arn, state_machine_arn
from jobline.settings import Settings
from jobline_local import adaptations
from tests.aws_resources import REGION, TEST_ENVIRONMENT, create_run_machines, create_run_table, machine_prefix

# The submit helper's queues, one per submit API (template.yaml), by backend.
SUBMIT_QUEUES = {
    "batch": "SubmitBatchJobQueue",
    "batch_service": "SubmitServiceJobQueue",
    "sagemaker_processing": "CreateProcessingJobQueue",
    "glue": "StartJobRunQueue",
}
# The guard on one attempt in these tests: long enough never to fire unless a test means it to.
GUARD_SECONDS = 300


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
def executions_end_with_the_test(session: Any) -> Iterator[None]:
    """Stop the executions a test leaves running and wait for their engine threads: one left going
    keeps calling AWS from its thread and lands in the next test's moto (same table, and the same
    run id), moving that test's rows under it."""
    from moto.stepfunctions.parser.utils import TMP_THREADS

    first = len(TMP_THREADS)
    yield
    sfn = session.client("stepfunctions")
    for machine in sfn.list_state_machines()["stateMachines"]:
        pages = sfn.get_paginator("list_executions").paginate(
            stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING"
        )
        for page in pages:
            for execution in page["executions"]:
                sfn.stop_execution(executionArn=execution["executionArn"], error="TestEnded", cause="the test ended")
    deadline = time.monotonic() + 60
    for thread in TMP_THREADS[first:]:
        while thread.is_alive() and not _parked(thread):
            assert time.monotonic() < deadline, f"an execution's thread {thread.name} still runs after its test"
            thread.join(timeout=0.05)


@dataclass
class Stack:
    session: Any
    settings: Settings
    queues: dict[str, str]

    def client(self, name: str) -> Any:
        return self.session.client(name)

    def deploy(self, *jobs: dict[str, Any]) -> Deps:
        """The catalog of `jobs` (tests.aws_resources.job_spec) with its run machines, one per
        policy, as template.yaml deploys them."""
        catalog = parse_catalog({"jobs": list(jobs)})
        create_run_machines(self.client("stepfunctions"), self.client("iam"), "runs", catalog)
        return Deps.build(self.settings, catalog, session=self.session)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    for key, value in TEST_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    adaptations.install()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        session = boto3.session.Session(region_name=REGION)
        create_run_table(session.client("dynamodb"), "runs")
        sqs = session.client("sqs")
        queues = {backend: sqs.create_queue(QueueName=name)["QueueUrl"] for backend, name in SUBMIT_QUEUES.items()}
        settings = Settings(
            run_table_name="runs",
            state_machine_prefix=machine_prefix(session.client("stepfunctions")),
            event_dlq_url=sqs.create_queue(QueueName="event-dlq")["QueueUrl"],
            run_data_bucket="run-data",
        )
        with executions_end_with_the_test(session):
            yield Stack(session, settings, queues)


# ---------------------------------------------------------------- the execution input (PHASE3 contract)
def run_input(stack: Stack, job: Job, run_id: str, guard: int = GUARD_SECONDS) -> dict[str, Any]:
    """The execution input of the shared contract: jobline.runs builds it in the stack; the
    request is the backend's (opaque to the machine, which hands it to the submitter)."""
    payload: dict[str, Any] = {
        "run_id": run_id,
        "job": job.name,
        "backend": job.backend.type,
        "submit_queue_url": stack.queues[job.backend.type],
        "guard_timeout_seconds": guard,
        "request": {"jobName": run_id, "note": "the submitter's business"},
    }
    if job.max_concurrent_runs is not None:
        payload["slot"] = {"job": job.name, "max": job.max_concurrent_runs}
    return payload


def start(stack: Stack, deps: Deps, run_id: str, job: str | None = None, guard: int = GUARD_SECONDS) -> str:
    """Start the run's execution on its job's machine, as RunStarter.start_stored does."""
    spec = deps.catalog.get(job) if job else deps.catalog.jobs[0]
    stack.client("stepfunctions").start_execution(
        stateMachineArn=state_machine_arn(deps.settings, spec),
        name=run_id,
        input=json.dumps(run_input(stack, spec, run_id, guard)),
    )
    return execution_arn(deps.settings, spec, run_id)


# ---------------------------------------------------------------- the submitter and the event handler
def receive_attempt(stack: Stack, backend: str = "batch", timeout: float = 30) -> dict[str, Any]:
    """The next attempt the machine sent to the backend's submit queue (deleted, as the submitter does)."""
    sqs = stack.client("sqs")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=stack.queues[backend], WaitTimeSeconds=1).get("Messages", [])
        if messages:
            sqs.delete_message(QueueUrl=stack.queues[backend], ReceiptHandle=messages[0]["ReceiptHandle"])
            return dict(json.loads(messages[0]["Body"]))
    raise AssertionError(f"no attempt reached the {backend} submit queue within {timeout}s")


def no_attempt(stack: Stack, backend: str = "batch") -> bool:
    sqs = stack.client("sqs")
    return not sqs.receive_message(QueueUrl=stack.queues[backend], WaitTimeSeconds=1).get("Messages")


def succeed(stack: Stack, attempt: dict[str, Any]) -> None:
    stack.client("stepfunctions").send_task_success(taskToken=attempt["token"], output="{}")


def fail(stack: Stack, attempt: dict[str, Any], error: str) -> None:
    stack.client("stepfunctions").send_task_failure(
        taskToken=attempt["token"], error=error, cause=f"attempt {attempt['retry_count'] + 1}: {error}"
    )


def next_attempt(stack: Stack, previous: dict[str, Any], backend: str = "batch") -> dict[str, Any]:
    """The retry of `previous`: AWS gives each try of a callback Task a fresh token (unadapted moto
    5.2.5 reuses the old one and replays its answer, design probe 15; the engine adaptation
    installed by the fixture fixes that), so the handler can never answer a retry with a stale token."""
    attempt = receive_attempt(stack, backend)
    assert attempt["token"] != previous["token"], "a retry reused its previous attempt's task token"
    assert attempt["retry_count"] == previous["retry_count"] + 1
    return attempt


# ---------------------------------------------------------------- what the execution did
def wait_for_end(stack: Stack, arn: str, timeout: float = 60) -> dict[str, Any]:
    sfn = stack.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return dict(described)
        time.sleep(0.05)
    raise AssertionError(f"execution {arn} still running after {timeout}s")


def history(stack: Stack, arn: str) -> list[dict[str, Any]]:
    pages = stack.client("stepfunctions").get_paginator("get_execution_history").paginate(executionArn=arn)
    return [event for page in pages for event in page["events"]]


def states_entered(events: list[dict[str, Any]]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]


def billed_transitions(events: list[dict[str, Any]]) -> int:
    """What Step Functions Standard bills: a transition per state entered, and "each retry will
    be charged as an additional state transition" (https://aws.amazon.com/step-functions/pricing/):
    a Task scheduled again within one entry of its state is a retry."""
    entered = sum(e["type"].endswith("StateEntered") for e in events)
    task_entries = sum(e["type"] == "TaskStateEntered" for e in events)
    scheduled = sum(e["type"] == "TaskScheduled" for e in events)
    return entered + scheduled - task_entries


def item(stack: Stack, key: str) -> dict[str, Any]:
    """A run table item as DynamoDB returns it ({} when absent)."""
    return dict(stack.client("dynamodb").get_item(TableName="runs", Key={"pk": {"S": key}}).get("Item", {}))


def put_row(stack: Stack, run_id: str, job: str, rank: int = 10, status: str = "STARTING") -> None:
    """The part of a run row the machine's writes condition on (the rows helper owns the rest)."""
    stack.client("dynamodb").put_item(
        TableName="runs",
        Item={
            "pk": {"S": f"RUN#{run_id}"},
            "run_id": {"S": run_id},
            "job": {"S": job},
            "status": {"S": status},
            "reason": {"S": "In queue"},
            "status_rank": {"N": str(rank)},
        },
    )
