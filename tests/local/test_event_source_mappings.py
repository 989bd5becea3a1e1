"""Local SQS event source mappings (emulated.event_source_mappings): a moto queue polled into a
function run by the local Lambda service, with the mapping's FilterCriteria and
ScalingConfig.MaximumConcurrency as Lambda applies them."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from jobline_local.activity import Activity
from jobline_local.deploy.deployment import Deployment, EventSourceMapping, FunctionSpec
from jobline_local.emulated.event_source_mappings import SqsPoller
from jobline_local.emulated.lambda_service import LambdaService
from tests.aws_resources import REGION
from tests.local.conftest import Clients
from tests.local.moto_support import ACCOUNT, client
from tests.waiting import wait_until

# Each invocation appends one line: its records' bodies and when it ran.
HANDLER = """\
import json, os, time

def handler(event, context):
    started = time.time()
    time.sleep(float(os.environ["HOLD_SECONDS"]))
    line = {"bodies": [r["body"] for r in event["Records"]], "started": started, "ended": time.time()}
    with open(os.environ["OUT"], "a") as out:
        out.write(json.dumps(line) + "\\n")
"""


@pytest.fixture
def queue() -> Iterator[tuple[str, str]]:
    with mock_aws():
        sqs = client("sqs")
        url = sqs.create_queue(QueueName="intake")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        yield url, arn


def polled(tmp_path: Path, mapping: EventSourceMapping, hold_seconds: float) -> tuple[SqsPoller, LambdaService]:
    code = tmp_path / "fn"
    code.mkdir()
    (code / "app.py").write_text(HANDLER)
    spec = FunctionSpec(
        logical_id="Fn",
        name="fn",
        arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn",
        code_dir=code,
        handler="app.handler",
        runtime="python3.11",
        timeout=30,
        memory=128,
        environment={"OUT": str(tmp_path / "out.jsonl"), "HOLD_SECONDS": str(hold_seconds)},
        layer_dirs=[],
        log_group="/aws/lambda/fn",
        reserved_concurrency=4,
    )
    deployment = Deployment("s", REGION, ACCOUNT, functions={"fn": spec}, event_source_mappings=[mapping])
    base_env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(sys.path)}
    lambdas = LambdaService(deployment, "http://127.0.0.1:1", Clients(), base_env, tmp_path / "logs", Activity())
    lambdas.start(prewarm=False)
    poller = SqsPoller(mapping, lambdas, Clients(), clock_speed=1.0)
    poller.start()
    return poller, lambdas


def invocations(tmp_path: Path) -> list[dict[str, Any]]:
    out = tmp_path / "out.jsonl"
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def test_filter_criteria(tmp_path: Path, queue: tuple[str, str]) -> None:
    url, arn = queue
    pattern = json.dumps({"body": {"status": ["FAILED"]}})
    mapping = EventSourceMapping(uuid="m", function_name="fn", source_arn=arn, filters=[pattern])
    poller, lambdas = polled(tmp_path, mapping, hold_seconds=0)
    sqs = client("sqs")
    try:
        for body in ('{"status": "SUCCEEDED"}', "not json", '{"status": "FAILED", "n": 1}'):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        wait_until(lambda: invocations(tmp_path), 30, "the matching message's invocation")
        wait_until(lambda: not poller.in_flight, 10, "the poller to finish its batch")
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    finally:
        poller.stop()
        lambdas.stop()
    assert [b for i in invocations(tmp_path) for b in i["bodies"]] == ['{"status": "FAILED", "n": 1}']
    # The rejected messages are gone, as Lambda deletes them: nothing waits to be redelivered.
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_maximum_concurrency(tmp_path: Path, queue: tuple[str, str]) -> None:
    url, arn = queue
    mapping = EventSourceMapping(uuid="m", function_name="fn", source_arn=arn, batch_size=1, maximum_concurrency=2)
    poller, lambdas = polled(tmp_path, mapping, hold_seconds=0.5)
    try:
        client("sqs").send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": str(n)} for n in range(8)]
        )
        wait_until(lambda: len(invocations(tmp_path)) == 8, 60, "eight invocations")
    finally:
        poller.stop()
        lambdas.stop()
    runs = invocations(tmp_path)
    most = max(sum(1 for o in runs if o["started"] <= r["started"] < o["ended"]) for r in runs)
    assert most <= 2  # the function's own concurrency (4) would allow more
    assert sorted(b for r in runs for b in r["bodies"]) == [str(n) for n in range(8)]
