"""The whole pipeline on the local stack: real template, handlers, state machine, and jobs that
run as local processes and report back through real-shaped Batch Job State Change events."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from jobline.triggers import run_id
from jobline_local.client import LocalStack
from tests.aws_resources import sqs_record
from tests.e2e.conftest import CATALOG, OVERRUN_KEY, Stack, bus_run_id, sqs_run_id, unique

pytestmark = pytest.mark.e2e


def test_dropped_file_runs_to_success_with_its_attempt_recorded(stack: Stack) -> None:
    key = f"incoming/{unique('drop')}.csv"
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=b"alpha beta,gamma\nalpha delta,alpha\n")

    run = stack.wait_run(lambda r: r["trigger"]["source"] == f"s3://{stack.bucket}/{key}")

    assert (run["job"], run["status"], run["reason"], run["trigger"]["type"]) == (
        "word-count",
        "SUCCEEDED",
        "Completed",
        "s3",
    )
    attempt = run["attempts"]["1"]
    assert attempt["exit_code"] == 0
    assert attempt["backend_status"] == "SUCCEEDED"
    assert attempt["started_at"] <= attempt["stopped_at"]
    assert attempt["log_stream"].startswith("jobline/default/")
    result = stack.client("s3").get_object(Bucket=stack.data_bucket, Key=f"results/{run['run_id']}.json")
    counts = json.loads(result["Body"].read())
    assert counts["words"] == 6
    assert counts["top"][0] == ["alpha", 3]


def test_failing_job_is_retried_by_its_strategy_then_fails_with_its_reason(stack: Stack) -> None:
    key = unique("fails")
    stack.send({"job": "always-fails", "idempotency_key": key})

    run = stack.wait_run_id(sqs_run_id("always-fails", key))

    assert (run["status"], run["reason"], run["attempt"]) == ("FAILED", "NonZeroExitCode", 2)
    assert sorted(run["attempts"]) == ["1", "2"]
    assert {a["exit_code"] for a in run["attempts"].values()} == {1}
    assert all(a["status_reason"] == "Essential container in task exited" for a in run["attempts"].values())


def test_a_failed_attempt_is_retried_and_the_run_succeeds(stack: Stack) -> None:
    request = unique("report")
    stack.put_event("demo.reports", "Report Requested", {"request_id": request, "day": "2025-01-31"})

    run = stack.wait_run_id(bus_run_id("flaky-report", request))

    assert (run["status"], run["attempt"], run["trigger"]["type"]) == ("SUCCEEDED", 2, "bus")
    assert run["attempts"]["1"]["exit_code"] == 3
    assert run["attempts"]["2"]["exit_code"] == 0
    assert stack.run_data(run["run_id"])["arguments"] == {"day": "2025-01-31"}


def test_duplicate_deliveries_give_one_run_each(stack: Stack) -> None:
    # S3: the same Object Created event delivered twice (EventBridge delivers at least once).
    key = f"incoming/{unique('dup')}.csv"
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=b"one,two\n")
    first = stack.wait_run(lambda r: r["trigger"]["source"] == f"s3://{stack.bucket}/{key}")
    event = json.loads(stack.run_data(first["run_id"])["event"])  # the matched event, as the job sees it
    delivery = {"job": "word-count", "trigger": 0, "event": event}  # as the rule queues it in S3IntakeQueue
    intake = sqs_record(delivery, unique("intake"), "arn:aws:sqs:us-east-1:123456789012:jobline-local-S3IntakeQueue")
    again = stack.invoke("S3TriggerFunction", {"Records": [intake]})
    assert again["error"] is None
    assert again["payload"]["batchItemFailures"] == []
    assert again["payload"]["runs"] == [{"run_id": first["run_id"], "job": "word-count", "created": False}]
    # SQS: the same message id twice (a redelivery), and the same idempotency key in two messages.
    queue_arn = f"arn:aws:sqs:us-east-1:123456789012:{stack.queue.rsplit('/', 1)[-1]}"
    record = sqs_record({"job": "always-fails"}, unique("msg"), queue_arn)
    for _ in range(2):
        assert stack.invoke("SqsTriggerFunction", {"Records": [record]})["payload"] == {"batchItemFailures": []}
    idempotency = unique("sqs-dup")
    for _ in range(2):
        stack.send({"job": "always-fails", "idempotency_key": idempotency})
    # Bus: the same request twice.
    request = unique("bus-dup")
    for _ in range(2):
        stack.put_event("demo.reports", "Report Requested", {"request_id": request, "day": ""})

    stack.wait_run_id(sqs_run_id("always-fails", idempotency))
    stack.wait_run_id(bus_run_id("flaky-report", request))
    message_run = run_id("always-fails", f"sqs-message:{record['messageId']}")
    stack.wait_run(lambda r: r["run_id"] == message_run, final=False)
    sources = [stack.trigger_key(r) for r in stack.runs()]
    assert sources.count(stack.trigger_key(first)) == 1
    assert sources.count(f"sqs-message:{record['messageId']}") == 1
    assert sources.count(f"sqs:{idempotency}") == 1
    assert sources.count(f"bus:{request}") == 1


def test_a_poison_message_reaches_the_dlq_while_the_rest_of_its_batch_is_processed(stack: Stack) -> None:
    s3 = stack.client("s3")
    s3.put_object(Bucket=stack.data_bucket, Key="inputs/words.csv", Body=b"a b c\n")
    good = [unique("batch-a"), unique("batch-b")]
    poison = f"not json {unique('poison')}"
    entries = [
        {
            "Id": str(i),
            "MessageBody": json.dumps(
                {
                    "job": "word-count",
                    "idempotency_key": k,
                    "arguments": {"bucket": stack.data_bucket, "key": "inputs/words.csv"},
                }
            ),
        }
        for i, k in enumerate(good)
    ]
    entries.append({"Id": "poison", "MessageBody": poison})
    stack.client("sqs").send_message_batch(QueueUrl=stack.queue, Entries=entries)

    for key in good:
        run = stack.wait_run_id(sqs_run_id("word-count", key))
        assert run["status"] == "SUCCEEDED"
    dead = stack.local.wait_for(
        lambda: [m for m in stack.peek("TriggerDeadLetterQueueUrl") if m["Body"] == poison],
        90,
        what="the poison message in the DLQ",
    )
    assert len(dead) == 1
    assert not [m for m in stack.peek("TriggerQueueUrl") if m["Body"] == poison]


def test_an_event_for_an_unknown_job_is_rejected_visibly(stack: Stack) -> None:
    marker = unique("unknown")
    scheduled = {"job": "no-such-job", "schedule": "nightly", "scheduled_time": marker, "arguments": {}}
    response = stack.invoke("ScheduleTriggerFunction", scheduled)
    assert response["payload"]["runs"] == []
    assert response["payload"]["rejected"][0]["code"] == "UnknownJob"

    def parked() -> dict[str, str]:
        codes = {}
        for message in stack.peek("EventDeadLetterQueueUrl"):
            if marker in message["Body"]:
                codes[json.loads(message["Body"])["source"]] = message["MessageAttributes"]["code"]["StringValue"]
        return codes

    assert stack.local.wait_for(parked, 30, what="the rejection in the event DLQ") == {"schedule": "UnknownJob"}


def test_an_event_no_bus_trigger_matches_invokes_nothing(stack: Stack) -> None:
    """EventBridge matches (one rule per bus trigger): an event no pattern matches reaches no
    function, so it is neither a run nor a rejection, even after a later event has been handled."""
    marker = unique("unmatched")
    stack.put_event("demo.unknown", "Nobody Listens", {"marker": marker})
    stack.put_event("demo.reports", "Report Requested", {"request_id": marker, "day": "2025-01-31"})
    stack.wait_run(lambda r: r["run_id"] == bus_run_id("flaky-report", marker), final=False)
    assert not [m for m in stack.peek("EventDeadLetterQueueUrl") if "demo.unknown" in m["Body"] and marker in m["Body"]]


def test_a_handler_error_is_reported_with_its_type(stack: Stack) -> None:
    response = stack.invoke("StateChangeFunction", {"not": "an event"})
    assert response["payload"].get("rejected") or response["error"] == "Unhandled"
    # Trigger handlers reject any input visibly; the notify function is fed only by Lambda's
    # event source mappings, so a shape they never send is an error.
    broken = stack.invoke("NotifyFunction", {"Records": "not a list"})
    assert broken["error"] == "Unhandled"
    assert broken["payload"]["errorType"]
    assert broken["payload"]["errorMessage"]


def test_a_failing_async_invocation_is_retried_then_sent_to_its_on_failure_destination(stack: Stack) -> None:
    marker = unique("async")
    name = stack.local.info["functions"]["NotifyFunction"]
    payload = {"Records": "not a list", "marker": marker}
    response = stack.client("lambda").invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps(payload))
    assert response["StatusCode"] == 202

    def record() -> dict[str, Any] | None:
        for message in stack.peek("EventDeadLetterQueueUrl"):
            body = json.loads(message["Body"])
            if body.get("requestPayload") == payload:
                return body
        return None

    # Lambda retries twice (1 and 2 minutes apart on AWS; 60x faster on this clock).
    failure = stack.local.wait_for(record, 60, what="the invocation record in the on-failure destination")
    assert failure["requestContext"]["condition"] == "RetriesExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["responseContext"]["functionError"] == "Unhandled"
    assert failure["responsePayload"]["errorType"]


def test_terminate_job_stops_a_running_attempt(stack: Stack) -> None:
    key = unique("terminate")
    stack.send({"job": "slow-export", "idempotency_key": key})
    rid = sqs_run_id("slow-export", key)
    running = stack.wait_run(lambda r: r["run_id"] == rid and r["status"] == "RUNNING", timeout=60, final=False)
    job_id = running["attempts"]["1"]["backend_job_id"]

    stack.client("batch").terminate_job(jobId=job_id, reason="Terminated by the e2e test")

    run = stack.wait_run_id(rid, timeout=30)
    assert run["status"] == "FAILED"
    assert run["attempts"]["1"]["status_reason"] == "Terminated by the e2e test"
    job = stack.client("batch").describe_jobs(jobs=[job_id])["jobs"][0]
    assert (job["status"], job["statusReason"]) == ("FAILED", "Terminated by the e2e test")
    assert job["container"]["exitCode"] == 143  # SIGTERM, as Docker reports it


def test_the_schedule_fires_on_the_local_clock(stack: Stack) -> None:
    run = stack.wait_run(lambda r: r["job"] == "nightly-digest", timeout=60)
    assert (run["status"], run["trigger"]["type"]) == ("SUCCEEDED", "schedule")
    assert stack.trigger_key(run).endswith("T02:00:00Z")
    digest = stack.client("s3").get_object(Bucket=stack.data_bucket, Key=f"digests/{run['run_id']}.json")
    assert json.loads(digest["Body"].read())["scheduled_time"].endswith("T02:00:00Z")


def test_an_attempt_that_overruns_its_timeout_ends_the_run_as_timeout(stack: Stack) -> None:
    run = stack.wait_run_id(sqs_run_id("slow-export", OVERRUN_KEY), timeout=150)
    assert (run["status"], run["reason"], run["attempt"]) == ("TIMEOUT", "Timeout", 1)
    assert run["attempts"]["1"]["status_reason"] == "Job attempt duration exceeded timeout"


def _processes_pointing_at(endpoint: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if f"AWS_ENDPOINT_URL={endpoint}".encode() in environ.split(b"\0"):
            found.append(int(pid))
    return found


def test_stopping_the_stack_leaves_no_process_behind(tmp_path: Path) -> None:
    local = LocalStack(catalog=CATALOG, state_dir=tmp_path / "state")
    local.start(timeout=120)
    try:
        local.client("sqs").send_message(
            QueueUrl=local.output("TriggerQueueUrl"), MessageBody=json.dumps({"job": "slow-export"})
        )
        local.wait_for(lambda: local.status()["batch_active"], 60, what="a running job")
        local.wait_for(lambda: len(_processes_pointing_at(local.endpoint)) >= 2, 60, what="workers and a job")
    finally:
        local.stop()
    assert local.proc is not None
    assert local.proc.returncode is not None
    deadline = time.monotonic() + 10
    while _processes_pointing_at(local.endpoint) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_pointing_at(local.endpoint) == []
