"""The `jobline` CLI against the local stack (`--local STATE_DIR`), end to end: real template,
handlers, state machine and jobs running as local processes."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from jobline_tools.cli import main
from tests.e2e.conftest import Stack, unique

pytestmark = pytest.mark.e2e


def cli(stack: Stack, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--local", str(stack.local.state_dir)])
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(stack: Stack, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = cli(stack, capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def wait_status(stack: Stack, capsys: pytest.CaptureFixture[str], run_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (run := cli_json(stack, capsys, "runs", "get", run_id))["status"] != status:
        assert time.monotonic() < deadline, f"run {run_id} is still {run['status']}"
        time.sleep(0.5)
    return run


def test_start_wait_shows_the_retry_and_the_run_is_listed(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["runs", "start", "flaky-report", "--param", "day=2026-11-20", "--wait", "--interval", "0.3"]
    code, out, err = cli(stack, capsys, *argv, "--timeout", "120")

    assert code == 0, err
    first, *progress, last = out.splitlines()
    run_id = first.split()[0]
    assert first == f"{run_id}  started"
    # The watch shows the second attempt; the "Retrying" moment between the two may fall between polls.
    assert any("attempt 2/3" in line for line in progress), out
    assert "SUCCEEDED attempt 2/3  Completed" in progress[-1]
    assert last.startswith(f"{run_id}  SUCCEEDED after ")

    run = cli_json(stack, capsys, "runs", "get", run_id)
    assert (run["status"], run["attempt"], run["arguments"]) == ("SUCCEEDED", 2, {"day": "2026-11-20"})
    assert [a["exit_code"] for a in run["attempts"]] == [3, 0]
    assert all(a["backend_job_id"] and a["log_stream"] for a in run["attempts"])
    assert run["trigger"]["type"] == "manual"
    assert run["execution_arn"].endswith(f":{run_id}")

    listed = cli_json(stack, capsys, "runs", "list", "--job", "flaky-report", "--status", "SUCCEEDED", "--since", "10m")
    assert run_id in [r["run_id"] for r in listed["runs"]]
    code, out, _ = cli(stack, capsys, "runs", "list", "--job", "flaky-report")
    assert code == 0
    assert any(line.startswith(f"{run_id}  SUCCEEDED") for line in out.splitlines())


def test_stop_a_running_run_then_retry_it(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    started = cli_json(stack, capsys, "runs", "start", "slow-export", "--client-token", unique("stop"))
    run_id = started["run_id"]
    wait_status(stack, capsys, run_id, "RUNNING")

    code, out, err = cli(stack, capsys, "runs", "stop", run_id)

    assert (code, err) == (0, "")
    assert out.startswith(f"stopped  {run_id}")
    run = cli_json(stack, capsys, "runs", "get", run_id)
    assert (run["status"], run["reason"]) == ("STOPPED", "Stopped by user")
    code, _, err = cli(stack, capsys, "runs", "stop", run_id)
    assert (code, err) == (1, f"jobline: not stopped {run_id}: already STOPPED\n")

    retried = cli_json(stack, capsys, "runs", "retry", run_id)
    new = cli_json(stack, capsys, "runs", "get", retried["run_id"])
    assert (new["retry_of"], new["job"], new["trigger"]["type"]) == (run_id, "slow-export", "retry")
    assert cli_json(stack, capsys, "runs", "stop", retried["run_id"])["errors"] == []
    time.sleep(2)  # whatever the stopped executions and jobs still report, the rows stay STOPPED
    assert cli_json(stack, capsys, "runs", "get", run_id)["status"] == "STOPPED"
    assert cli_json(stack, capsys, "runs", "get", retried["run_id"])["status"] == "STOPPED"


def test_a_failed_run_and_its_retry_exit_3(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(stack, capsys, "runs", "start", "always-fails", "--wait", "--interval", "0.3", "--timeout", "90")
    run_id = out.split()[0]
    assert code == 3
    assert out.splitlines()[-1].startswith(f"{run_id}  FAILED after ")

    code, out, _ = cli(stack, capsys, "runs", "retry", run_id, "--wait", "--interval", "0.3", "--timeout", "90")
    assert code == 3
    assert out.splitlines()[0].endswith(f"started, a retry of {run_id}")
    retry = cli_json(stack, capsys, "runs", "get", out.split()[0])
    assert (retry["status"], retry["reason"], retry["retry_of"]) == ("FAILED", "NonZeroExitCode", run_id)


def test_every_run_that_ends_is_announced_once_on_the_bus(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    sqs, events = stack.client("sqs"), stack.client("events")
    queue = sqs.create_queue(QueueName=unique("announced"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = unique("announced")
    pattern = {"source": ["jobline"], "detail-type": ["Run State Change"]}
    events.put_rule(Name=rule, EventBusName=stack.bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule, EventBusName=stack.bus, Targets=[{"Id": "queue", "Arn": queue_arn}])
    stopped = cli_json(stack, capsys, "runs", "start", "slow-export")["run_id"]
    code, out, _ = cli(stack, capsys, "runs", "start", "always-fails", "--wait", "--interval", "0.3", "--timeout", "90")
    failed = out.split()[0]
    assert code == 3
    assert cli(stack, capsys, "runs", "stop", stopped)[0] == 0

    announced: list[dict[str, Any]] = []

    def both() -> bool:
        for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            announced.append(json.loads(message["Body"])["detail"])
        return {failed, stopped} <= {event["run_id"] for event in announced}

    stack.local.wait_for(both, 30, what="the Run State Change events")
    time.sleep(2)  # a second event for either run would arrive by now
    both()
    mine = sorted((e["run_id"], e["status"]) for e in announced if e["run_id"] in (failed, stopped))
    assert mine == sorted([(failed, "FAILED"), (stopped, "STOPPED")])
    by_run = {event["run_id"]: event for event in announced}
    assert (by_run[failed]["reason"], by_run[failed]["attempt"]) == ("NonZeroExitCode", 2)
    assert (by_run[stopped]["reason"], by_run[stopped]["trigger_source"]) == (
        "Stopped by user",
        "manual by jobline CLI",
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["runs", "get", "word-count-ffffffffffffffffffff"], "no run 'word-count-ffffffffffffffffffff'"),
        (["runs", "stop", *[f"word-count-{i:020x}" for i in range(26)]], "got 26"),
        (["runs", "list", "--status", "DONE"], "unknown status 'DONE'"),
        (["runs", "list", "--next-token", "junk"], "malformed next_token"),
        (["runs", "start", "word-count", "--param", "colour=red"], "does not declare parameters ['colour']"),
        (["jobs", "show", "nope"], "unknown job 'nope'"),
    ],
)
def test_bad_input_is_refused_with_the_reason(
    stack: Stack, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = cli(stack, capsys, *argv)
    assert code == 2
    assert message in err


def test_the_catalog_is_the_local_stacks(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    jobs = [job["name"] for job in cli_json(stack, capsys, "jobs", "list")]
    assert jobs == [
        "word-count",
        "greet",
        "flaky-report",
        "always-fails",
        "slow-export",
        "nightly-digest",
        "train-model",
        "clean-data",
        "glue-etl",
    ]
    assert cli_json(stack, capsys, "jobs", "show", "slow-export")["timeout_seconds"] == 60
