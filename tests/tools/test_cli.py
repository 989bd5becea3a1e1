"""The `jobline` CLI (main([...]) with capsys) against moto: every command, its tables and --json,
the exit codes, and bad input with a clear message on stderr."""

from __future__ import annotations

import importlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import boto3
import pytest

from jobline.dal import RunTable
from jobline.deps import get_deps
from jobline.runs import execution_arn, now_iso
from jobline.settings import get_settings
from jobline_tools import operator_cli
from jobline_tools.cli import main
from tests.cfn import ROOT
from tests.unit.conftest import put_row

pytestmark = pytest.mark.usefixtures("env")
RUN_ID = "nightly-report-ffffffffffffffffffff"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def start(capsys: pytest.CaptureFixture[str], name: str = "t1") -> str:
    started = run_json(capsys, "runs", "start", "nightly-report", "--param", "day=2026-11-20", "--client-token", name)
    return started["run_id"]


def set_status(run_id: str, status: str, reason: str = "test", attempt: int = 1) -> None:
    table = RunTable(boto3.client("dynamodb"), "runs")
    rank = {"STARTING": 10, "RUNNING": 20}.get(status, 30)
    moved = {"status": status, "reason": reason, "attempt": attempt, "status_rank": rank}
    if rank == 30:
        moved["ended_at"] = now_iso()
    put_row(table, run_id, **moved)


# ---------------------------------------------------------------- jobs
def test_jobs_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "jobs", "list")
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split() == ["NAME", "BACKEND", "TRIGGERS", "PARAMETERS", "DESCRIPTION"]
    assert [line.split()[0] for line in lines] == ["csv-word-count", "nightly-report"]
    assert [job["name"] for job in run_json(capsys, "jobs", "list")] == ["csv-word-count", "nightly-report"]

    code, out, _ = run(capsys, "jobs", "show", "nightly-report")
    assert code == 0
    assert "name         nightly-report" in out
    assert "triggers     bus, schedule" in out
    assert "command=python -c print(1)" in out
    assert out.splitlines()[-1].split()[0] == "day"
    assert run_json(capsys, "jobs", "show", "nightly-report")["timeout_seconds"] == 60


# ---------------------------------------------------------------- start, get, list
def test_runs_start_get_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "runs", "start", "nightly-report", "--param", "day=2026-11-20", "--client-token", "t1")
    run_id = out.split()[0]
    assert code == 0
    assert out.splitlines() == [f"{run_id}  started", f"watch it: jobline runs wait {run_id}"]
    code, out, _ = run(capsys, "runs", "start", "nightly-report", "--param", "day=2026-11-20", "--client-token", "t1")
    assert (code, out.splitlines()[0]) == (0, f"{run_id}  already started (same client token)")

    code, out, _ = run(capsys, "runs", "get", run_id)
    assert code == 0
    # Keys padded to the longest, "execution link": a run names its execution from its creation on.
    assert f"run             {run_id}" in out
    assert "status          PENDING: Recently submitted" in out
    assert "trigger         manual: manual by jobline CLI" in out
    assert "arguments       day=2026-11-20" in out
    arn = execution_arn(get_settings(), get_deps().catalog.get("nightly-report"), run_id)
    assert arn.startswith("arn:aws:states:us-east-1:123456789012:execution:jobline-run-")
    link = f"https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/{arn}"
    assert f"execution link  {link}" in out
    detail = run_json(capsys, "runs", "get", run_id)
    assert (detail["run_id"], detail["arguments"]) == (run_id, {"day": "2026-11-20"})

    other = start(capsys, "t2")
    code, out, _ = run(capsys, "runs", "list", "--job", "nightly-report", "--max-results", "1")
    header, line, _, more = out.splitlines()
    assert header.split()[:3] == ["RUN", "ID", "STATUS"]
    assert line.split()[:2] == [other, "PENDING"]
    token = more.removeprefix("more: add --next-token ")
    page = run_json(capsys, "runs", "list", "--job", "nightly-report", "--max-results", "1", "--next-token", token)
    assert [r["run_id"] for r in page["runs"]] == [run_id]
    assert run_json(capsys, "runs", "list", "--status", "pending")["next_token"] is None
    assert run(capsys, "runs", "list", "--status", "FAILED")[1] == "no runs\n"


# ---------------------------------------------------------------- stop, retry
def test_runs_stop_and_retry(capsys: pytest.CaptureFixture[str]) -> None:
    run_id = start(capsys)
    code, out, err = run(capsys, "runs", "stop", run_id, RUN_ID)
    assert code == 1
    assert out == f"stopped  {run_id}\n"
    assert err.startswith(f"jobline: not stopped {RUN_ID}: no run '{RUN_ID}'")

    code, out, err = run(capsys, "runs", "stop", run_id)
    assert (code, err) == (1, f"jobline: not stopped {run_id}: already STOPPED\n")

    code, out, _ = run(capsys, "runs", "retry", run_id, "--client-token", "r1")
    new = out.split()[0]
    assert code == 0
    assert out.splitlines()[0] == f"{new}  started, a retry of {run_id}"
    assert run_json(capsys, "runs", "get", new)["retry_of"] == run_id


# ---------------------------------------------------------------- wait
def progress_through(monkeypatch: pytest.MonkeyPatch, run_id: str, steps: list[tuple[str, str, int]]) -> None:
    """Each sleep of `runs wait` moves the run one step on."""
    remaining = list(steps)

    def sleep(_: float) -> None:
        if remaining:
            set_status(run_id, *remaining.pop(0))

    monkeypatch.setattr(operator_cli.time, "sleep", sleep)


def test_runs_wait_shows_each_change_and_exits_0_on_success(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = start(capsys)
    steps = [("STARTING", "In queue", 1), ("STARTING", "In queue", 1), ("RUNNING", "Running", 1)]
    progress_through(monkeypatch, run_id, [*steps, ("SUCCEEDED", "Completed", 1)])

    code, out, _ = run(capsys, "runs", "wait", run_id, "--interval", "0")

    assert code == 0
    *progress, final = out.splitlines()
    assert [line.split(None, 1)[1] for line in progress] == [
        f"{run_id}  PENDING   no attempt yet  Recently submitted",
        f"{run_id}  STARTING  attempt 1/1  In queue",
        f"{run_id}  RUNNING   attempt 1/1  Running",
        f"{run_id}  SUCCEEDED attempt 1/1  Completed",
    ]
    assert re.fullmatch(rf"{run_id}  SUCCEEDED after \d+s: Completed", final)


@pytest.mark.parametrize(("status", "code"), [("SUCCEEDED", 0), ("FAILED", 3), ("TIMEOUT", 4), ("STOPPED", 5)])
def test_the_exit_code_of_a_wait_is_the_outcome(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, status: str, code: int
) -> None:
    progress_through(monkeypatch, "unused", [])
    run_id = start(capsys)
    set_status(run_id, status)
    got, out, err = run(capsys, "runs", "wait", run_id, "--json")
    assert got == code
    assert json.loads(out)["status"] == status
    assert f"{run_id}  {status}" in err  # progress goes to stderr with --json


def test_start_wait_waits_and_a_wait_can_time_out(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    progress_through(monkeypatch, "unused", [])
    code, out, err = run(capsys, "runs", "start", "csv-word-count", "--wait", "--interval", "0", "--timeout", "0")
    assert code == 6
    assert out.splitlines()[0].endswith("  started")
    assert "PENDING" in out.splitlines()[1]
    assert err.startswith("jobline: run csv-word-count-")
    assert err.endswith(" is still PENDING after 0 s\n")


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["runs", "get", RUN_ID], f"no run '{RUN_ID}'"),
        (["runs", "get", "not-a-run"], "no run 'not-a-run'"),
        (
            ["runs", "stop", *[f"nightly-report-{i:020x}" for i in range(26)]],
            "stop takes 1 to 25 run ids per call, got 26",
        ),
        (["runs", "list", "--status", "DONE"], "unknown status 'DONE': use one of PENDING, STARTING"),
        (["runs", "list", "--next-token", "bm90IGEgdG9rZW4"], "malformed next_token"),
        (["runs", "list", "--max-results", "201"], "max_results must be from 1 to 200, got 201"),
        (["runs", "list", "--since", "last week"], "since 'last week' is neither a time"),
        (["runs", "list", "--job", "nope"], "unknown job 'nope'"),
        (["runs", "start", "nope"], "unknown job 'nope'"),
        (["runs", "start", "csv-word-count", "--param", "colour=red"], "does not declare parameters ['colour']"),
        (["runs", "start", "csv-word-count", "--param", "a=1", "--param", "a=2"], "parameters given twice: ['a']"),
        (["runs", "retry", RUN_ID], f"no run '{RUN_ID}'"),
        (["runs", "wait", RUN_ID], f"no run '{RUN_ID}'"),
        (["jobs", "show", "nope"], "unknown job 'nope'"),
        (["jobs", "list", "--local", "/nowhere"], "no local stack at /nowhere: start one with `jobline local`"),
    ],
)
def test_bad_input_exits_2_with_the_reason_on_stderr(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("jobline: ")
    assert message in err


def test_malformed_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["runs", "start", "csv-word-count", "--param", "no-equals-sign"])
    assert exit_info.value.code == 2
    assert "expected NAME=VALUE, got 'no-equals-sign'" in capsys.readouterr().err


# ---------------------------------------------------------------- where the CLI goes
def test_without_a_stack_it_says_how_to_name_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUN_TABLE_NAME")
    code, _, err = run(capsys, "jobs", "list")
    assert code == 2
    assert "which stack? Pass --stack NAME or --local, or set RUN_TABLE_NAME" in err


def test_stack_reads_the_settings_of_the_stacks_api_function(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, Any]
) -> None:
    settings = {"RUN_TABLE_NAME": "runs", "STATE_MACHINE_PREFIX": env["prefix"], "EVENT_DLQ_URL": env["dlq"]}
    settings["RUN_DATA_BUCKET"] = "run-data"
    deploy_stack(env["session"], "jobline-test", settings)
    run_id = start(capsys)
    for name in settings:
        monkeypatch.delenv(name)

    page = run_json(capsys, "runs", "list", "--stack", "jobline-test", "--region", "us-east-1")
    assert [r["run_id"] for r in page["runs"]] == [run_id]
    code, _, err = run(capsys, "runs", "list", "--stack", "nope", "--region", "us-east-1")
    assert code == 2
    assert "stack 'nope'" in err


def deploy_stack(session: Any, name: str, variables: dict[str, str]) -> None:
    """A stack with an ApiFunction whose environment holds the settings, as the real one does."""
    role = session.client("iam").create_role(RoleName="api", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    function = {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Runtime": "python3.11",
            "Handler": "app.handler",
            "Role": role,
            "Code": {"ZipFile": "def handler(event, context): pass"},
            "Environment": {"Variables": variables},
        },
    }
    body = json.dumps({"Resources": {"ApiFunction": function}})
    session.client("cloudformation").create_stack(StackName=name, TemplateBody=body)


def test_local_needs_a_running_local_stack(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    state = {"endpoint": "http://127.0.0.1:1", "region": "us-east-1", "pid": 2**22 + 1, "functions": {}}
    (tmp_path / "stack.json").write_text(json.dumps(state))
    code, _, err = run(capsys, "jobs", "list", "--local", str(tmp_path))
    assert code == 2
    assert f"the local stack of {tmp_path}/stack.json (pid {2**22 + 1}) is not running any more" in err


def test_the_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(command in out for command in ("local", "jobs", "runs", "fanouts"))
    with pytest.raises(SystemExit) as exit_info:
        main(["runs", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(command in out for command in ("start", "get", "list", "stop", "retry", "wait"))


def test_console_scripts_are_the_tools_and_the_local_stack() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"jobline": "jobline_tools.cli:main", "jobline-local": "jobline_local.cli:main"}
    for target in scripts.values():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function))


def test_jobline_local_is_an_alias_of_jobline_local(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["local", "--help"])
    assert exit_info.value.code == 0
    assert "--clock-speed" in capsys.readouterr().out


# ---------------------------------------------------------------- fan-outs
def test_fanouts_start_get_list_and_stop(
    capsys: pytest.CaptureFixture[str], fan: dict[str, Any], tmp_path: Path
) -> None:
    from tests.unit.test_fanouts import drain, read, work

    manifest = tmp_path / "images.csv"
    manifest.write_text("image\ncat.png\ndog.png\n")
    code, out, _ = run(capsys, "runs", "start", "resize", "--manifest", str(manifest), "--client-token", "c1")
    fid = out.split()[0]
    assert code == 0
    assert out.splitlines() == [
        f"{fid}  fan-out requested (s3://run-data/fanout-items/{fid}.csv)",
        f"watch it: jobline fanouts get {fid}",
    ]
    (request,) = drain(fan, "requests")
    assert read(request)["queued"] == 2  # what the fan-out function does with it
    work(drain(fan, "items"))

    code, out, _ = run(capsys, "fanouts", "get", fid)
    assert code == 0
    assert "state     QUEUED" in out
    assert "items     2 (lines read: 3, queued: 2)" in out
    assert "runs      2 created, 2 not ended" in out
    header, line = run(capsys, "fanouts", "list")[1].splitlines()
    assert header.split()[:3] == ["FAN-OUT", "ID", "JOB"]
    assert line.split()[:3] == [fid, "resize", "QUEUED"]
    code, out, err = run(capsys, "fanouts", "stop", fid)
    assert (code, out.strip(), err) == (0, f"{fid}  STOPPED: 2 run(s) stopped", "")

    started = run_json(capsys, "fanouts", "start", "resize", "--items", '[{"image": "e.png"}]', "--client-token", "c2")
    assert started["manifest"].endswith(".jsonl")
    code, _, err = run(capsys, "runs", "start", "resize", "--items", "[{}]", "--param", "image=x")
    assert (code, err.strip()) == (
        2,
        "jobline: --param and --wait start one run; a fan-out takes its arguments from its items",
    )
    code, _, err = run(capsys, "fanouts", "start", "nightly-report", "--items", "[{}]")
    assert code == 2
    assert "unknown job 'nightly-report'" in err
