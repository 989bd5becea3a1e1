"""jobline_tools.codegen: the schedules block of template.yaml is a pure function of the catalog."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobline.catalog import load_catalog, parse_catalog
from jobline.errors import CatalogError
from jobline.settings import PACKAGED_CATALOG
from jobline_local.deploy.template import parse_yaml
from jobline_tools import codegen
from tests.cfn import TEMPLATE


def _raw_catalog() -> dict[str, Any]:
    return yaml.safe_load(PACKAGED_CATALOG.read_text())


def _job(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return next(job for job in raw["jobs"] if job["name"] == name)


def _write_catalog(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def template_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "template.yaml"
    shutil.copyfile(TEMPLATE, copy)
    return copy


def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = codegen.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_template_block_matches_the_packaged_catalog() -> None:
    """The drift test: template.yaml holds exactly what `make generate` would write."""
    rendered = codegen.render_schedules(load_catalog(PACKAGED_CATALOG))
    assert codegen.current_block(TEMPLATE.read_text()) == rendered, "run `make generate`"


def test_check_passes_on_the_repository(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "check", "--template", TEMPLATE, "--catalog", PACKAGED_CATALOG)
    assert code == 0
    assert "up to date" in out


def test_a_new_schedule_fails_check_until_written(
    tmp_path: Path, template_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = _raw_catalog()
    _job(raw, "csv-word-count")["triggers"]["schedule"] = [
        {"name": "hourly", "expression": "rate(1 hour)", "arguments": {"output_prefix": "hourly/"}}
    ]
    catalog_path = _write_catalog(tmp_path, raw)
    before = template_copy.read_text()

    code, _, err = _run(capsys, "check", "--template", template_copy, "--catalog", catalog_path)
    assert code == 1
    assert "out of date" in err
    assert "make generate" in err
    assert "+  ScheduleCsvWordCountHourly:" in err  # a diff, naming what would be added
    assert template_copy.read_text() == before  # check never writes

    assert _run(capsys, "write", "--template", template_copy, "--catalog", catalog_path)[0] == 0
    assert _run(capsys, "check", "--template", template_copy, "--catalog", catalog_path)[0] == 0
    written = template_copy.read_text()
    assert "ScheduleCsvWordCountHourly:" in written
    # Only the block changed: the hand-written rest of the template is untouched.
    prefix = before.split(codegen.BEGIN_MARKER)[0]
    suffix = before.split(codegen.END_MARKER)[1]
    assert written.startswith(prefix)
    assert written.endswith(suffix)
    # Writing again is a no-op (deterministic output).
    assert _run(capsys, "write", "--template", template_copy, "--catalog", catalog_path)[0] == 0
    assert template_copy.read_text() == written


def test_a_catalog_error_names_the_job_and_the_field(
    tmp_path: Path, template_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = _raw_catalog()
    _job(raw, "nightly-report")["retry"]["attempts"] = 0
    catalog_path = _write_catalog(tmp_path, raw)
    before = template_copy.read_text()

    for command in ("check", "write"):
        code, _, err = _run(capsys, command, "--template", template_copy, "--catalog", catalog_path)
        assert code == 1
        assert "nightly-report" in err
        assert "retry.attempts" in err
    assert template_copy.read_text() == before


def test_an_invalid_schedule_expression_is_rejected_naming_the_job(
    tmp_path: Path, template_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = _raw_catalog()
    _job(raw, "nightly-report")["triggers"]["schedule"][0]["expression"] = "every night at 2"
    catalog_path = _write_catalog(tmp_path, raw)

    code, _, err = _run(capsys, "check", "--template", template_copy, "--catalog", catalog_path)
    assert code == 1
    assert "nightly-report" in err
    assert "expression" in err


def test_an_unknown_timezone_is_rejected_naming_the_job() -> None:
    raw = _raw_catalog()
    _job(raw, "nightly-report")["triggers"]["schedule"][0]["timezone"] = "Mars/Olympus_Mons"
    with pytest.raises(CatalogError, match=r"nightly-report.*timezone"):
        codegen.render_schedules(parse_catalog(raw))


def test_missing_markers_fail_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template = tmp_path / "template.yaml"
    template.write_text("Resources: {}\n")
    code, _, err = _run(capsys, "check", "--template", template, "--catalog", PACKAGED_CATALOG)
    assert code == 1
    assert codegen.BEGIN_MARKER in err


def _rendered_resources(raw: dict[str, Any]) -> dict[str, Any]:
    block = codegen.render_schedules(parse_catalog(raw))
    return parse_yaml(block) or {}


def test_each_schedule_targets_the_trigger_with_the_documented_input() -> None:
    raw = _raw_catalog()
    _job(raw, "nightly-report")["triggers"]["schedule"].append(
        {
            "name": "backfill",
            "expression": "cron(30 4 ? * MON *)",
            "timezone": "Europe/Paris",
            "description": "Monday's backfill, it's 'quoted'",
            "arguments": {"day": "2024-01-01"},
        }
    )
    catalog = parse_catalog(raw)
    resources = _rendered_resources(raw)
    assert list(resources) == ["ScheduleNightlyReportNightly", "ScheduleNightlyReportBackfill"]

    job = catalog.get("nightly-report")
    backfill = job.triggers.schedule[1]
    props = resources["ScheduleNightlyReportBackfill"]["Properties"]
    assert resources["ScheduleNightlyReportBackfill"]["Type"] == "AWS::Scheduler::Schedule"
    assert props["Name"] == "nightly-report.backfill"
    assert props["GroupName"] == {"Ref": "JobSchedulesGroup"}
    assert props["ScheduleExpression"] == "cron(30 4 ? * MON *)"
    assert props["ScheduleExpressionTimezone"] == "Europe/Paris"
    assert props["Description"] == "Monday's backfill, it's 'quoted'"
    assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}  # the string, not YAML 1.1's boolean
    target = props["Target"]
    assert target["Arn"] == {"Fn::GetAtt": ["ScheduleTriggerFunction", "Arn"]}
    assert target["RoleArn"] == {"Fn::GetAtt": ["SchedulerRole", "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["EventDeadLetterQueue", "Arn"]}}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert json.loads(target["Input"]) == {
        "job": "nightly-report",
        "schedule": "backfill",
        "scheduled_time": "<aws.scheduler.scheduled-time>",
        "execution_id": "<aws.scheduler.execution-id>",
        "arguments": {"day": "2024-01-01"},
    }
    assert json.loads(target["Input"]) == codegen.schedule_input(job, backfill)


def test_schedule_input_takes_real_values_for_the_local_stack() -> None:
    job = load_catalog(PACKAGED_CATALOG).get("nightly-report")
    event = codegen.schedule_input(
        job, job.triggers.schedule[0], scheduled_time="2024-05-01T02:00:00Z", execution_id="e-1"
    )
    assert event == {
        "job": "nightly-report",
        "schedule": "nightly",
        "scheduled_time": "2024-05-01T02:00:00Z",
        "execution_id": "e-1",
        "arguments": {},
    }


def test_names_fit_scheduler_limits_at_the_catalog_maximum() -> None:
    raw = _raw_catalog()
    job = _job(raw, "nightly-report")
    job["name"] = "a" * 40
    job["triggers"]["schedule"][0]["name"] = "b" * 23
    props = next(iter(_rendered_resources(raw).values()))["Properties"]
    assert len(props["Name"]) <= codegen.MAX_SCHEDULE_NAME


def test_logical_id_collisions_are_reported() -> None:
    raw = _raw_catalog()
    raw["jobs"].append({**_job(raw, "nightly-report"), "name": "nightly"})
    _job(raw, "nightly")["triggers"] = {"schedule": [{"name": "report-nightly", "expression": "rate(1 day)"}]}
    with pytest.raises(CatalogError, match="ScheduleNightlyReportNightly"):
        codegen.render_schedules(parse_catalog(raw))


def test_an_empty_schedule_list_renders_a_valid_block() -> None:
    raw = _raw_catalog()
    for job in raw["jobs"]:
        job.get("triggers", {}).pop("schedule", None)
    block = codegen.render_schedules(parse_catalog(raw))
    assert block.strip().startswith("#")
    assert _rendered_resources(raw) == {}
