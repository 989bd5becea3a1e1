"""One local stack for the whole session (the demo catalog, the real template, functions and
state machine), its clock 60x faster and started just before 02:00 UTC so the nightly schedule
fires once. Every wait is bounded."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobline import run_view
from jobline.dal import RunTable
from jobline.triggers import run_id
from jobline_local.client import LocalStack
from jobline_local.runs import is_final

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "examples" / "demo-jobs.yaml"
CLOCK_SPEED = 60
# The overrun job is started with the stack: its 60 s timeout then runs while the other tests do.
OVERRUN_KEY = "e2e-overrun"


class Stack:
    def __init__(self, local: LocalStack) -> None:
        self.local = local
        self.bucket = local.output("InputBucketName")
        self.data_bucket = local.output("RunDataBucketName")
        self.queue = local.output("TriggerQueueUrl")
        self.bus = local.output("JobBusName")

    def client(self, service: str) -> Any:
        return self.local.client(service)

    def runs(self) -> list[dict[str, Any]]:
        return self.local.runs()

    def run(self, rid: str) -> dict[str, Any] | None:
        return next((r for r in self.runs() if r["run_id"] == rid), None)

    def run_data(self, rid: str) -> dict[str, Any] | None:
        """The run's RUNDATA# item: its trigger event (or event_s3_uri), trigger key, arguments, retry_of."""
        return RunTable(self.client("dynamodb"), self.local.output("RunTableName")).get_run_data(rid)

    def execution_arn(self, run: dict[str, Any]) -> str:
        """The run's execution (its row names the machine's policy)."""
        arn = run_view.execution_arn(run, self.local.output("RunStateMachinePrefix"))
        assert arn is not None, f"run {run['run_id']} names no execution"
        return arn

    def trigger_key(self, run: dict[str, Any]) -> str:
        """The run's trigger key (kept in its data, not in the hot row)."""
        data = self.run_data(run["run_id"])
        assert data is not None, f"run {run['run_id']} has no data item"
        return str(data["trigger_key"])

    def wait_run(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 60, final: bool = True
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((r for r in self.runs() if match(r) and (is_final(r) or not final)), None)

        return self.local.wait_for(found, timeout, what="a run")

    def wait_run_id(self, rid: str, timeout: float = 60) -> dict[str, Any]:
        return self.wait_run(lambda r: r["run_id"] == rid, timeout)

    def send(self, body: Any) -> None:
        self.client("sqs").send_message(
            QueueUrl=self.queue, MessageBody=body if isinstance(body, str) else json.dumps(body)
        )

    def put_event(self, source: str, detail_type: str, detail: dict[str, Any]) -> None:
        entry = {"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail), "EventBusName": self.bus}
        assert self.client("events").put_events(Entries=[entry])["FailedEntryCount"] == 0

    def invoke(self, function: str, payload: dict[str, Any]) -> dict[str, Any]:
        name = self.local.info["functions"][function]
        response = self.client("lambda").invoke(FunctionName=name, Payload=json.dumps(payload).encode())
        return {"error": response.get("FunctionError"), "payload": json.loads(response["Payload"].read() or b"null")}

    def peek(self, queue_output: str) -> list[dict[str, Any]]:
        """Messages now in a queue, left in place (visibility timeout 0)."""
        url = self.local.output(queue_output)
        seen: dict[str, dict[str, Any]] = {}
        for _ in range(5):
            for m in (
                self.client("sqs")
                .receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, MessageAttributeNames=["All"]
                )
                .get("Messages", [])
            ):
                seen[m["MessageId"]] = m
        return list(seen.values())


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    clock_start = datetime.now(UTC).replace(hour=1, minute=59, second=0, microsecond=0).isoformat()
    local = LocalStack(
        catalog=CATALOG,
        state_dir=tmp_path_factory.mktemp("local-stack") / "state",
        clock_speed=CLOCK_SPEED,
        clock_start=clock_start,
    )
    local.start(timeout=120)
    stack = Stack(local)
    stack.send({"job": "slow-export", "idempotency_key": OVERRUN_KEY})
    try:
        yield stack
    finally:
        local.stop()


def sqs_run_id(job: str, key: str) -> str:
    return run_id(job, f"sqs:{key}")


def bus_run_id(job: str, key: str) -> str:
    return run_id(job, f"bus:{key}")


def unique(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns()}"
