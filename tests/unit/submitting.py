"""What the submitter's tests share: a stack on moto (the run table as template.yaml declares it,
a Batch queue and job definition, a service job queue, a SageMaker role, a Glue job, the four
submit queues) and, under each retry policy's run machine name, a state machine whose one state is
the contract's Attempt (PHASE3: a callback Task that sends `{run_id, job, retry_count, token,
request}` to the run's submit queue), run by moto's engine. A run is started as the trigger does;
its message is read from its submit queue."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from jobline import quota
from jobline.catalog import Catalog, parse_catalog
from jobline.dal import RunTable
from jobline.runs import RunStarter, execution_arn
from jobline.settings import Settings
from jobline.submit import Submitter
from jobline.triggers import RunRequest, Trigger
from jobline_local import adaptations
from tests.aws_resources import (
    REGION,
    TEST_ENVIRONMENT,
    TRAINING_REQUEST,
    create_batch,
    create_run_machines,
    create_run_table,
    create_training_queue,
)

QUEUES = {
    "submit_batch_job_queue_url": "submit-batch-job",
    "submit_service_job_queue_url": "submit-service-job",
    "create_processing_job_queue_url": "create-processing-job",
    "start_job_run_queue_url": "start-job-run",
}
TRAINING = {**TRAINING_REQUEST, "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}
JOBS = [
    {
        "name": "word-count",
        "description": "d",
        "backend": {"type": "batch", "command": ["python", "-c", "print(1)"]},
        "timeout_seconds": 600,
        "retry": {"attempts": 3, "interval_seconds": 1},
        "triggers": {"sqs": True},
    },
    {"name": "train-model", "description": "d", "backend": {"type": "batch_service", "training": TRAINING}},
    {
        "name": "clean-data",
        "description": "d",
        "backend": {"type": "sagemaker_processing", "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/c:1"},
    },
    {"name": "glue-etl", "description": "d", "backend": {"type": "glue", "arguments": {"--mode": "full"}}},
]
LONG_ENOUGH = 25.0  # seconds a test's invocation has left


class Clock:
    """Epoch seconds the submitter reads, moved by its sleeps and by the test (a redelivery comes
    after the visibility timeout: the invocation that took a lease has ended by then)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Stack:
    session: Any
    settings: Settings
    catalog: Catalog
    table: RunTable
    clock: Clock = field(default_factory=Clock)
    leads: quota.Leads = field(default_factory=quota.Leads)  # this test's container, not the process's
    _clients: dict[str, Any] = field(default_factory=dict)
    _received: dict[str, str] = field(default_factory=dict)  # run id -> its message's body

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service)
        return self._clients[service]

    def submitter(self, **settings: Any) -> Submitter:
        stack_settings = self.settings.model_copy(update=settings)
        return Submitter(
            self.table, self.client, stack_settings, clock=self.clock, sleep=self.clock.sleep, leads=self.leads
        )

    def start(self, job: str, **arguments: str) -> str:
        """A run of `job` as a trigger starts it: its data, its row, then its execution."""
        request = RunRequest(
            job=self.catalog.get(job),
            trigger=Trigger(type="manual", key=f"{job}-{time.monotonic_ns()}", source="test", event={}),
            arguments=arguments,
        )
        starter = RunStarter(self.settings, self.table, self.client("stepfunctions"), self.client("s3"))
        return starter.start(request).run_id

    def message(self, run_id: str, timeout: float = 30) -> str:
        """The body of the next message for `run_id` on any submit queue (as the execution sent it)."""
        sqs = self.client("sqs")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if run_id in self._received:
                return self._received.pop(run_id)
            for name in QUEUES:
                url = getattr(self.settings, name)
                for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                    self._received[json.loads(message["Body"])["run_id"]] = str(message["Body"])
            time.sleep(0.05)
        raise AssertionError(f"no submit message for {run_id} in {timeout}s")

    def execution(self, run_id: str, timeout: float = 30) -> dict[str, Any]:
        """The run's execution once it has ended."""
        arn = execution_arn(self.settings, self.catalog.get(self.row(run_id)["job"]), run_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = self.client("stepfunctions").describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                return dict(described)
            time.sleep(0.05)
        raise AssertionError(f"execution {run_id} still running after {timeout}s")

    def batch_jobs(self, run_id: str) -> list[dict[str, Any]]:
        """Every Batch job of the run (any status), described."""
        batch = self.client("batch")
        ids = [
            job["jobId"]
            for job in batch.list_jobs(
                jobQueue=self.settings.job_queue_on_demand_arn,
                filters=[{"name": "JOB_NAME", "values": [f"{run_id}-*"]}],
            )["jobSummaryList"]
        ]
        return batch.describe_jobs(jobs=ids)["jobs"] if ids else []

    def row(self, run_id: str) -> dict[str, Any]:
        row = self.table.get_run(run_id)
        assert row is not None
        return row


def _stay(*_: Any) -> None:
    """The local compute's hook, doing nothing: a job stays as AWS first puts it."""


def time_left(seconds: float = LONG_ENOUGH) -> Callable[[], float]:
    return lambda: seconds


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    for key, value in TEST_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    adaptations.install()  # DynamoDB's atomic item requests among them (adaptations.dynamodb)
    saved = dict(adaptations.hooks)
    # Submitted jobs stay where AWS puts them first: nothing runs them (the submitter's part ends there).
    adaptations.set_hooks(**dict.fromkeys(("batch_job", "processing_job", "service_job", "glue_job_run"), _stay))
    config = {"batch": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}
    with mock_aws(config=config):  # type: ignore[arg-type]
        session = boto3.session.Session(region_name=REGION)
        create_run_table(session.client("dynamodb"), "runs")
        queue, definition = create_batch(session)
        iam = session.client("iam")
        role = iam.create_role(RoleName="sm", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        catalog = parse_catalog({"jobs": JOBS})
        sfn = session.client("stepfunctions")
        prefix = create_run_machines(sfn, iam, "runs", catalog)  # the generated definitions, as deployed
        session.client("glue").create_job(
            Name="jobline-example", Role=role, Command={"Name": "glueetl", "ScriptLocation": "s3://b/s.py"}
        )
        sqs = session.client("sqs")
        urls = {name: sqs.create_queue(QueueName=queue_name)["QueueUrl"] for name, queue_name in QUEUES.items()}
        settings = Settings(
            run_table_name="runs",
            state_machine_prefix=prefix,
            event_dlq_url=sqs.create_queue(QueueName="event-dlq")["QueueUrl"],
            run_data_bucket="run-data",
            job_queue_on_demand_arn=queue,
            job_queue_spot_arn=queue,
            default_job_definition_arn=definition,
            service_job_queue_arn=create_training_queue(session.client("batch")),
            sagemaker_role_arn=role,
            glue_job_name="jobline-example",
            **urls,
        )
        yield Stack(session, settings, catalog, RunTable(session.client("dynamodb"), "runs"))
        for machine in sfn.list_state_machines()["stateMachines"]:
            running = sfn.list_executions(stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING")
            for execution in running["executions"]:
                sfn.stop_execution(executionArn=execution["executionArn"])
    adaptations.hooks.update(saved)
