"""`jobline jobs validate FILE`: the runtime's catalog checks (and codegen's) before a deploy, each
problem with its job, field and rule; exit 1 on errors, 0 and one line when the catalog is valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobline.catalog import load_catalog
from jobline.errors import CatalogError
from jobline.settings import PACKAGED_CATALOG
from jobline_tools.catalog_check import check_catalog
from jobline_tools.cli import main
from tests.aws_resources import job_spec


def write(tmp_path: Path, *jobs: dict[str, Any]) -> Path:
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump({"jobs": list(jobs)}, sort_keys=False))
    return path


def validate(capsys: pytest.CaptureFixture[str], path: Path, *options: str) -> tuple[int, str]:
    code = main(["jobs", "validate", str(path), *options])
    out, err = capsys.readouterr()
    assert err == ""
    return code, out


def scheduled(name: str, timezone: str = "UTC") -> dict[str, Any]:
    schedule = {"name": "nightly", "expression": "cron(0 2 * * ? *)", "timezone": timezone}
    return job_spec(name, triggers={"schedule": [schedule]})


def test_a_valid_catalog_gets_one_line_and_exit_0(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, job_spec("word-count"), scheduled("nightly-report"))
    assert validate(capsys, path) == (0, f"{path}: valid, 2 jobs with 1 schedule\n")

    code, out = validate(capsys, path, "--json")
    assert code == 0
    assert json.loads(out) == {"file": str(path), "valid": True, "jobs": 2, "schedules": 1, "errors": []}


def test_the_packaged_catalog_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = validate(capsys, PACKAGED_CATALOG)
    assert code == 0, out
    assert out.startswith(f"{PACKAGED_CATALOG}: valid, ")


def test_each_error_names_its_job_field_and_rule(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, job_spec("Bad_Name"), {**job_spec("word-count"), "colour": "red"})
    code, out = validate(capsys, path)
    assert code == 1
    assert out.splitlines() == [
        f"{path}: job 'Bad_Name': field name: String should match pattern '^[a-z][a-z0-9-]{{0,38}}[a-z0-9]$'",
        f"{path}: job 'word-count': field colour: Extra inputs are not permitted",
        f"{path}: 2 errors",
    ]

    code, out = validate(capsys, path, "--json")
    assert code == 1
    report = json.loads(out)
    assert (report["valid"], report["jobs"], report["schedules"]) == (False, None, None)
    assert [(e["job"], e["field"], e["rule"]) for e in report["errors"]] == [
        ("Bad_Name", "name", "String should match pattern '^[a-z][a-z0-9-]{0,38}[a-z0-9]$'"),
        ("word-count", "colour", "Extra inputs are not permitted"),
    ]


@pytest.mark.parametrize(
    ("jobs", "where"),
    [
        pytest.param(
            [{"description": "no name"}, job_spec("fargate", backend={"type": "batch", "vcpu": 3})],
            [("#0", "name"), ("#0", "backend"), ("fargate", "backend.vcpu")],
            id="jobs",
        ),
        pytest.param([job_spec("twice"), job_spec("twice")], [(None, "(root)")], id="catalog"),
    ],
)
def test_the_errors_are_exactly_the_loaders(
    tmp_path: Path, jobs: list[dict[str, Any]], where: list[tuple[str | None, str]]
) -> None:
    """Nothing dropped, nothing added: the report is the runtime's CatalogError, problem by problem."""
    path = write(tmp_path, *jobs)
    with pytest.raises(CatalogError) as raised:
        load_catalog(path)
    found = check_catalog(path).problems
    assert "\n".join(problem.message for problem in found) == str(raised.value)
    assert [(p.job, p.field, p.rule) for p in found] == [(p.job, p.field, p.rule) for p in raised.value.problems]
    assert [(p.job, p.field) for p in found] == where
    assert all(p.rule and p.message.endswith(p.rule) for p in found)


def test_what_make_generate_refuses_is_an_error_too(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Two schedules that render as one logical id are refused when the template is rendered."""
    first = {**job_spec("nightly-report"), "triggers": {"schedule": [{"name": "nightly", "expression": "rate(1 day)"}]}}
    second = {
        **job_spec("nightly"),
        "triggers": {"schedule": [{"name": "report-nightly", "expression": "rate(1 day)"}]},
    }
    path = write(tmp_path, first, second)
    load_catalog(path)  # the runtime's loader lets it through
    code, out = validate(capsys, path, "--json")
    assert code == 1
    [error] = json.loads(out)["errors"]
    assert (error["job"], error["field"]) == ("nightly", "triggers.schedule[report-nightly].name")
    assert error["rule"].startswith("renders as logical id ScheduleNightlyReportNightly")


def test_an_unreadable_catalog_is_one_error_without_job_or_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text("jobs: [\n  - a: b\n   c")
    code, out = validate(capsys, path, "--json")
    assert code == 1
    [error] = json.loads(out)["errors"]
    assert (error["job"], error["field"]) == (None, None)
    assert error["rule"] == error["message"]
    assert error["message"].startswith(f"cannot read catalog {path}: while parsing")
    assert "line 2, column 3" in error["message"]  # the parser's context lines stay with it

    code, out = validate(capsys, tmp_path / "missing.yaml")
    assert code == 1
    assert out.splitlines()[-1] == f"{tmp_path / 'missing.yaml'}: 1 error"


def test_validate_needs_no_stack(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["jobs", "validate", str(write(tmp_path, job_spec())), "--stack", "prod"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --stack" in capsys.readouterr().err


def test_what_aws_would_refuse_is_reported_with_job_field_and_rule(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A bad cron, a Fargate size AWS has not, a role jobline cannot pass: refused before a deploy."""
    bad_cron = {**job_spec("nightly"), "triggers": {"schedule": [{"name": "n", "expression": "cron(99 2 * * ? *)"}]}}
    fargate = job_spec("small", backend={"type": "batch", "vcpu": 0.25, "memory_mib": 8192})
    role = job_spec(
        "clean-data",
        backend={"type": "sagemaker_processing", "image_uri": "x:1", "role_arn": "arn:aws:iam::123456789012:role/r"},
    )
    code, out = validate(capsys, write(tmp_path, bad_cron, fargate, role), "--json")
    assert code == 1
    found = {(e["job"], e["field"]): e["rule"] for e in json.loads(out)["errors"]}
    assert set(found) == {
        ("nightly", "triggers.schedule.0.expression"),
        ("small", "backend.memory_mib"),
        ("clean-data", "backend.role_arn"),
    }
    assert "'99' is outside 0-59" in found["nightly", "triggers.schedule.0.expression"]
    assert "does not fit Fargate's 0.25 vCPU" in found["small", "backend.memory_mib"]
    assert "only the stack's SageMaker execution role" in found["clean-data", "backend.role_arn"]
