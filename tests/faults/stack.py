"""One moto for the whole fault suite: the run table, the real ASL on moto's engine (with
jobline's adaptations and AWS's contracts), Batch without Docker, a Batch service job queue, the
DLQs, and every handler loaded from functions/<name>/app.py with the environment Lambda gives it.
Each case uses its own trigger keys, so cases share the stack without sharing runs."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws
from moto.batch_simple.models import BatchSimpleBackend

from jobline import deps as deps_module
from jobline import notifications, operations
from jobline import settings as settings_module
from jobline.deps import Deps, get_deps
from jobline_local import adaptations, contracts
from jobline_local.contracts import throttling
from tests.aws_resources import (
    REGION,
    TEST_ENVIRONMENT,
    TRAINING_REQUEST,
    create_batch,
    create_run_table,
    create_state_machine,
    create_training_queue,
)
from tests.local.aws_contracts import KNOWN_JOBLINE_VIOLATIONS
from tests.unit.conftest import load_handler
from tests.waiting import wait_until

BATCH_JOB = "fault-count"
SERVICE_JOB = "fault-train"
JOBS = [
    {
        "name": BATCH_JOB,
        "description": "a Batch job every trigger can start",
        "backend": {"type": "batch", "command": ["python", "-c", "print(1)"], "vcpu": 1, "memory_mib": 2048},
        "timeout_seconds": 60,
        "retry": {"attempts": 1, "interval_seconds": 0},
        "parameters": {"output_prefix": {"default": "results/"}},
        "triggers": {
            "s3": [{"prefix": "incoming/"}],
            "sqs": True,
            "schedule": [{"name": "hourly", "expression": "rate(1 hour)"}],
            "bus": [
                {
                    "pattern": {"source": ["acme.faults"], "detail-type": ["Count Requested"]},
                    "idempotency_key": "detail.request_id",
                }
            ],
        },
    },
    {
        "name": SERVICE_JOB,
        "description": "a SageMaker training job through a Batch service job queue",
        "backend": {"type": "batch_service", "training": TRAINING_REQUEST},
        "timeout_seconds": 600,
        "retry": {"attempts": 1, "interval_seconds": 0},
    },
]
HANDLERS = ("s3_trigger", "bus_trigger", "schedule_trigger", "sqs_trigger", "state_change", "notify", "reconciler")


@dataclass
class Compute:
    """How the backends end each job: Batch jobs succeed at once; service jobs are held RUNNING
    until the test ends them (so an execution waits on its task token)."""

    batch_jobs: list[dict[str, Any]] = field(default_factory=list)
    service_jobs: dict[str, Any] = field(default_factory=dict)  # by run id
    environments: dict[str, dict[str, str]] = field(default_factory=dict)  # what each run's job saw
    lock: threading.Lock = field(default_factory=threading.Lock)

    def finish_batch_job(self, backend: BatchSimpleBackend, job: Any) -> None:
        backend.backend._jobs[job.job_id] = job
        job.job_started_at = datetime.now()
        job.log_stream_name = job._stream_name
        job._start_attempt()
        tags = backend.list_tags_for_resource(job.arn)
        with self.lock:
            self.batch_jobs.append({"name": job.job_name, "id": job.job_id, "tags": tags})
            environment = {e["name"]: e["value"] for e in (job.container_overrides or {}).get("environment", [])}
            self.environments[tags.get("jobline:run-id", "")] = environment
        job._mark_stopped(success=True)

    def hold_service_job(self, job: Any) -> None:
        from jobline_local.emulated.batch_service_jobs import now_ms

        job.status, job.started_at = "RUNNING", now_ms()
        with self.lock:
            self.service_jobs[job.tags["jobline:run-id"]] = job
            self.environments[job.tags["jobline:run-id"]] = json.loads(job.payload).get("Environment", {})

    def submitted(self, run_id: str) -> list[str]:
        """The names of the Batch jobs submitted for a run (one per attempt, if nothing doubled)."""
        with self.lock:
            return [job["name"] for job in self.batch_jobs if job["tags"].get("jobline:run-id") == run_id]


@dataclass
class Stack:
    session: Any
    machine: str
    event_dlq: str
    compute: Compute
    handlers: dict[str, ModuleType]

    @property
    def deps(self) -> Deps:
        return get_deps()

    def client(self, service: str) -> Any:
        return self.session.client(service)

    def execution_arn(self, run_id: str) -> str:
        return self.machine.replace(":stateMachine:", ":execution:") + f":{run_id}"

    def execution(self, run_id: str) -> dict[str, Any] | None:
        try:
            return self.client("stepfunctions").describe_execution(executionArn=self.execution_arn(run_id))
        except self.client("stepfunctions").exceptions.ExecutionDoesNotExist:
            return None

    def settle(self, run_ids: list[str], timeout: float = 8) -> None:
        """Wait (bounded) until no execution of these runs is still going, but one waiting on a
        held service job; one still going after that is reported by the outcome check."""

        def settled() -> bool:
            for run_id in run_ids:
                execution = self.execution(run_id)
                held = self.compute.service_jobs.get(run_id)
                if execution and execution["status"] == "RUNNING" and (held is None or held.status != "RUNNING"):
                    return False
            return True

        with contextlib.suppress(AssertionError):
            wait_until(settled, timeout, what=f"the executions of {run_ids} to end")

    def drain(self, queue_url: str) -> dict[str, str]:
        """Every message on a queue, by id (received and deleted), to hand to a function."""
        sqs, messages = self.client("sqs"), {}
        while received := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages"):
            for message in received:
                messages[message["MessageId"]] = message["Body"]
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return messages

    def dlq_bodies(self) -> list[dict[str, Any]]:
        """Every message on the event DLQ (received and deleted: each case reads its own)."""
        sqs, bodies = self.client("sqs"), []
        while messages := sqs.receive_message(QueueUrl=self.event_dlq, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.event_dlq, ReceiptHandle=message["ReceiptHandle"])
        return bodies


# Package scope: the moto stack ends with the fault suite, so no later test meets its resources.
@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    patches = pytest.MonkeyPatch()
    compute = Compute()
    for key, value in TEST_ENVIRONMENT.items():
        patches.setenv(key, value)
    patches.setattr(
        BatchSimpleBackend,
        "_mark_job_as_finished",
        lambda self, include_start_attempt, job: compute.finish_batch_job(self, job),
    )
    adaptations.install()
    saved_hooks = dict(adaptations.hooks)
    adaptations.set_hooks(service_job=compute.hold_service_job)
    contracts.install()
    throttling.configure(None)
    contracts.record.tolerated = KNOWN_JOBLINE_VIOLATIONS
    catalog = Path(tmp_path_factory.mktemp("faults")) / "jobs.yaml"
    catalog.write_text(yaml.safe_dump({"jobs": JOBS}))
    with mock_aws(config={"batch": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}):
        session = boto3.session.Session(region_name=REGION)
        create_run_table(session.client("dynamodb"), "runs")
        machine = create_state_machine(session.client("stepfunctions"), session.client("iam"), "runs")
        queue, definition = create_batch(session)
        training_queue = create_training_queue(session.client("batch"), capacity=100)
        session.client("s3").create_bucket(Bucket="run-data")
        event_dlq = session.client("sqs").create_queue(QueueName="event-dlq")["QueueUrl"]
        session.client("events").create_event_bus(Name="jobline-jobs")
        redrive = session.client("sqs").create_queue(QueueName="notification-redrive")["QueueUrl"]
        environment = {
            "RUN_TABLE_NAME": "runs",
            "STATE_MACHINE_ARN": machine,
            "EVENT_DLQ_URL": event_dlq,
            "RUN_DATA_BUCKET": "run-data",
            "JOB_QUEUE_ON_DEMAND_ARN": queue,
            "JOB_QUEUE_SPOT_ARN": queue,
            "DEFAULT_JOB_DEFINITION_ARN": definition,
            "SERVICE_JOB_QUEUE_ARN": training_queue,
            "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/sagemaker",
            "JOB_BUS_NAME": "jobline-jobs",
            "CATALOG_PATH": str(catalog),
            "NOTIFICATION_REDRIVE_QUEUE_URL": redrive,
            # The reconciler's sweep comes after the deliveries: every live row is due (settings
            # a branch does not know are ignored).
            "RECONCILE_AFTER_SECONDS": "0",
            "UNSTARTED_AFTER_SECONDS": "0",
        }
        for key, value in environment.items():
            patches.setenv(key, value)
        _clear_caches()
        handlers = {name: load_handler(name) for name in HANDLERS}
        try:
            yield Stack(session, machine, event_dlq, compute, handlers)
        finally:
            _clear_caches()
            patches.undo()
            adaptations.hooks.update(saved_hooks)
            contracts.record.tolerated = frozenset()


def _clear_caches() -> None:
    settings_module.get_settings.cache_clear()
    deps_module.get_deps.cache_clear()
    deps_module._client.cache_clear()
    notifications.get_notifier.cache_clear()
    operations.get_operations.cache_clear()
