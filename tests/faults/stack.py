"""One moto for the whole fault suite: the run table (and its stream), the generated per-policy run
state machines on moto's engine (with jobline's adaptations and AWS's contracts), the submit
queues, Batch without Docker, a Batch service job queue, the DLQs, and every handler loaded from
functions/<name>/app.py with the environment Lambda gives it. Each case uses its own trigger keys,
so cases share the stack without sharing runs.

As runs go on, `Stack.settle` plays the event sources that carry them (each in its own fault
scope, tests.faults.injection): the submit queues' mapping feeds the submitter from real SQS
(its hand-backs and visibility timeouts decide when a message comes again), each Batch job that
ended becomes a Batch Job State Change event for the state change handler (an async invoke), and
the run table's stream feeds the slot consumer (the records its mapping's filter lets through).
Time is scaled down: visibility and lease are seconds, not minutes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
import yaml
from boto3.dynamodb.types import TypeDeserializer
from moto import mock_aws
from moto.batch_simple.models import BatchSimpleBackend

from jobline import deps as deps_module
from jobline import notifications, operations, slots, submit
from jobline import settings as settings_module
from jobline.catalog import parse_catalog
from jobline.deps import Deps, get_deps
from jobline.runs import run_execution_arn
from jobline_local import adaptations, contracts
from jobline_local.contracts import throttling
from tests.aws_resources import (
    REGION,
    TEST_ENVIRONMENT,
    TRAINING_REQUEST,
    create_batch,
    create_run_machines,
    create_run_table,
    create_training_queue,
)
from tests.faults.injection import Injector
from tests.faults.redelivery import Ledger, deliver_async, deliver_stream, sqs_record
from tests.local.aws_contracts import KNOWN_JOBLINE_VIOLATIONS
from tests.unit.conftest import LambdaContext, load_handler

BATCH_JOB = "fault-count"
SERVICE_JOB = "fault-train"
REFUSED_JOB = "fault-refused"  # its SubmitJob request names a job definition Batch does not have
SLOT_LIMIT = 2
JOBS = [
    {
        "name": BATCH_JOB,
        "description": "a Batch job every trigger can start",
        "backend": {"type": "batch", "command": ["python", "-c", "print(1)"], "vcpu": 1, "memory_mib": 2048},
        "timeout_seconds": 60,
        "retry": {"attempts": 1, "interval_seconds": 1},
        "max_concurrent_runs": SLOT_LIMIT,
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
        "retry": {"attempts": 1, "interval_seconds": 1},
    },
    {
        "name": REFUSED_JOB,
        "description": "a Batch job AWS refuses to submit",
        "backend": {"type": "batch", "command": ["true"], "vcpu": 1, "memory_mib": 2048, "job_definition": "missing"},
        "timeout_seconds": 60,
        "retry": {"attempts": 1, "interval_seconds": 1},
    },
]
HANDLERS = (
    "s3_trigger",
    "bus_trigger",
    "schedule_trigger",
    "sqs_trigger",
    "state_change",
    "notify",
    "reconciler",
    "submitter",
    "run_stream",
)
# The submit queues (template.yaml), by the Settings field of their URL.
SUBMIT_QUEUES = {
    "SUBMIT_BATCH_JOB_QUEUE_URL": "SubmitBatchJobQueue",
    "SUBMIT_SERVICE_JOB_QUEUE_URL": "SubmitServiceJobQueue",
    "CREATE_PROCESSING_JOB_QUEUE_URL": "CreateProcessingJobQueue",
    "START_JOB_RUN_QUEUE_URL": "StartJobRunQueue",
}
# Scaled time: a received message is hidden this long (the template's 180 s), the submitter's
# invocation has this long left (its lease: a redelivery after a lost response waits for it), and
# a throttled submit API is tried again this soon (jobline.submit's 5 s).
VISIBILITY_SECONDS = 2
SUBMITTER_MILLIS_LEFT = 6_000
THROTTLED_RETRY_SECONDS = 0.3


class SubmitterContext(LambdaContext):
    def get_remaining_time_in_millis(self) -> int:
        return SUBMITTER_MILLIS_LEFT


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
            self.batch_jobs.append({"name": job.job_name, "id": job.job_id, "tags": tags, "announced": False})
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

    def unannounced(self) -> list[dict[str, Any]]:
        with self.lock:
            ended = [job for job in self.batch_jobs if not job["announced"]]
            for job in ended:
                job["announced"] = True
            return ended


@dataclass
class Stack:
    session: Any
    event_dlq: str
    compute: Compute
    handlers: dict[str, ModuleType]
    submit_queues: list[str]
    stream_arn: str
    background: Ledger = field(default_factory=Ledger)  # the event sources' deliveries of a case
    _stream_iterator: str | None = None

    @property
    def deps(self) -> Deps:
        return get_deps()

    def client(self, service: str) -> Any:
        return self.session.client(service)

    def execution(self, run_id: str) -> dict[str, Any] | None:
        row = self.deps.table.get_run(run_id)
        arn = run_execution_arn(self.deps.settings, self.deps.catalog, row) if row else None
        if arn is None:
            return None
        try:
            return self.client("stepfunctions").describe_execution(executionArn=arn)
        except self.client("stepfunctions").exceptions.ExecutionDoesNotExist:
            return None

    def settle(self, run_ids: list[str], injector: Injector, timeout: float = 20) -> None:
        """Carry the runs on (submits, Batch events, stream records) until no execution of these
        runs is still going, but one waiting on a held service job, and nothing is left to carry;
        one still going after `timeout` is reported by the outcome check."""

        def settled() -> bool:
            for run_id in run_ids:
                execution = self.execution(run_id)
                held = self.compute.service_jobs.get(run_id)
                if execution and execution["status"] == "RUNNING" and (held is None or held.status != "RUNNING"):
                    return False
            return True

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.carry(injector) and settled():
                return
            time.sleep(0.05)

    def carry(self, injector: Injector) -> bool:
        """One round of every event source; whether any delivered something."""
        moved = self._submits(injector)
        moved = self._batch_events(injector) or moved
        return self._stream(injector) or moved

    def _submits(self, injector: Injector) -> bool:
        """The submit queues' mapping: a batch received (hidden for the visibility timeout), handed
        to the submitter; what it did not report failed is deleted, the rest comes again when its
        visibility ends (a hand-back sets it)."""
        sqs, moved = self.client("sqs"), False
        for url in self.submit_queues:
            received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
            messages = received.get("Messages", [])
            if not messages:
                continue
            moved = True
            records = [
                sqs_record(m["MessageId"], m["Body"], int(m["Attributes"]["ApproximateReceiveCount"]))
                | {"receiptHandle": m["ReceiptHandle"], "eventSourceARN": _queue_arn(url)}
                for m in messages
            ]
            with injector.scoped("submitter"):
                ok, result = self.background.invoke(
                    injector, self.handlers["submitter"].handler, {"Records": records}, SubmitterContext()
                )
            failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])} if ok else None
            for message in messages:
                if failed is not None and message["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return moved

    def _batch_events(self, injector: Injector) -> bool:
        """Each Batch job that ended: its Batch Job State Change event, as EventBridge invokes the
        state change handler (async: retried, then parked)."""
        ended = self.compute.unannounced()
        for job in ended:
            (detail,) = self.client("batch").describe_jobs(jobs=[job["id"]])["jobs"]
            event = {
                "version": "0",
                "id": f"event-{job['id']}",
                "detail-type": "Batch Job State Change",
                "source": "aws.batch",
                "account": "123456789012",
                "time": "2026-11-21T00:10:00Z",
                "region": REGION,
                "resources": [detail["jobArn"]],
                "detail": json.loads(json.dumps(detail, default=str)),
            }
            with injector.scoped("state_change"):
                deliver_async(self.background, injector, self.handlers["state_change"].handler, event)
        return bool(ended)

    def _stream(self, injector: Injector) -> bool:
        """The run table's stream, in order, through the slot consumer's mapping filter (a run with
        a slot that ended, a run that started waiting), to the consumer."""
        streams = self.client("dynamodbstreams")
        if self._stream_iterator is None:
            (shard, *_) = streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
            self._stream_iterator = streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        response = streams.get_records(ShardIterator=self._stream_iterator, Limit=1000)
        self._stream_iterator = response.get("NextShardIterator") or self._stream_iterator
        records = [_lambda_record(r, self.stream_arn) for r in response["Records"] if _slot_record(r)]
        if records:
            with injector.scoped("run_stream"):
                deliver_stream(self.background, injector, self.handlers["run_stream"].handler, records)
        return bool(response["Records"])

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


def _queue_arn(url: str) -> str:
    return f"arn:aws:sqs:{REGION}:123456789012:{url.rsplit('/', 1)[1]}"


_deserialize = TypeDeserializer().deserialize


def _slot_record(record: dict[str, Any]) -> bool:
    """RunStreamFunction's FilterCriteria (template.yaml), on the record's images."""
    change = record["dynamodb"]
    old, new = ({k: _deserialize(v) for k, v in change.get(side, {}).items()} for side in ("OldImage", "NewImage"))
    if record["eventName"] != "MODIFY" or not new.get("slot_job"):
        return False
    return slots.ended(old, new) or slots.registered(old, new)


def _lambda_record(record: dict[str, Any], arn: str) -> dict[str, Any]:
    change = dict(record["dynamodb"])
    if isinstance(created := change.get("ApproximateCreationDateTime"), datetime):
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    return {**record, "eventVersion": "1.1", "awsRegion": REGION, "dynamodb": change, "eventSourceARN": arn}


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
    patches.setattr(submit, "THROTTLED_RETRY_SECONDS", THROTTLED_RETRY_SECONDS)
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
        ddb, sqs = session.client("dynamodb"), session.client("sqs")
        create_run_table(ddb, "runs")
        stream_arn = ddb.update_table(
            TableName="runs", StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        )["TableDescription"]["LatestStreamArn"]
        prefix = create_run_machines(
            session.client("stepfunctions"), session.client("iam"), "runs", parse_catalog({"jobs": JOBS})
        )
        queue, definition = create_batch(session)
        training_queue = create_training_queue(session.client("batch"), capacity=100)
        session.client("s3").create_bucket(Bucket="run-data")
        event_dlq = sqs.create_queue(QueueName="event-dlq")["QueueUrl"]
        session.client("events").create_event_bus(Name="jobline-jobs")
        redrive = sqs.create_queue(QueueName="notification-redrive")["QueueUrl"]
        submit_queues = {
            variable: sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(VISIBILITY_SECONDS)})[
                "QueueUrl"
            ]
            for variable, name in SUBMIT_QUEUES.items()
        }
        environment = {
            "RUN_TABLE_NAME": "runs",
            "STATE_MACHINE_PREFIX": prefix,
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
            **submit_queues,
        }
        for key, value in environment.items():
            patches.setenv(key, value)
        _clear_caches()
        handlers = {name: load_handler(name) for name in HANDLERS}
        try:
            yield Stack(session, event_dlq, compute, handlers, list(submit_queues.values()), stream_arn)
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
