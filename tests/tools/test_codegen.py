"""jobline_tools.codegen: the generated block of template.yaml (schedules, S3 and bus trigger rules)
is a pure function of the catalog."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobline.catalog import S3Trigger, load_catalog, parse_catalog
from jobline.errors import CatalogError
from jobline.settings import PACKAGED_CATALOG
from jobline_local.adaptations.delivery import pattern_matches
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
    rendered = codegen.render(load_catalog(PACKAGED_CATALOG), codegen.handwritten_rules(TEMPLATE.read_text()))
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
        _render(raw)


def test_missing_markers_fail_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template = tmp_path / "template.yaml"
    template.write_text("Resources: {}\n")
    code, _, err = _run(capsys, "check", "--template", template, "--catalog", PACKAGED_CATALOG)
    assert code == 1
    assert codegen.BEGIN_MARKER in err


def _render(raw: dict[str, Any], handwritten: dict[str, int] | None = None) -> str:
    return codegen.render(parse_catalog(raw), handwritten or {})


def _rendered_resources(raw: dict[str, Any]) -> dict[str, Any]:
    """The generated triggers (the run state machines of the block left out)."""
    block = _render(raw)
    return {k: v for k, v in (parse_yaml(block) or {}).items() if v["Type"] != "AWS::Serverless::StateMachine"}


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
    schedules = [k for k, v in resources.items() if v["Type"] == "AWS::Scheduler::Schedule"]
    assert schedules == ["ScheduleNightlyReportNightly", "ScheduleNightlyReportBackfill"]

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
        _render(raw)


def test_a_catalog_without_generated_triggers_renders_a_valid_block() -> None:
    raw = _raw_catalog()
    for job in raw["jobs"]:
        for kind in ("schedule", "s3", "bus", "manifest"):
            job.get("triggers", {}).pop(kind, None)
    block = _render(raw)
    assert block.strip().startswith("#")
    assert _rendered_resources(raw) == {}
    # What is left is the run state machines, one per retry policy.
    assert {r["Type"] for r in parse_yaml(block).values()} == {"AWS::Serverless::StateMachine"}


# ---------------------------------------------------------------- run state machines
def test_a_new_retry_policy_fails_check_until_its_definition_is_written_and_stale_ones_go(
    tmp_path: Path, template_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, "write", "--template", template_copy, "--catalog", PACKAGED_CATALOG)[0] == 0
    definitions = tmp_path / "statemachines"
    assert {p.name for p in definitions.iterdir()} == {p.name for p in (TEMPLATE.parent / "statemachines").iterdir()}
    raw = _raw_catalog()
    _job(raw, "nightly-report")["retry"] = {"attempts": 4, "interval_seconds": 15, "backoff_rate": 1.5}
    catalog_path = _write_catalog(tmp_path, raw)
    old = definitions / "run-a2-i300-b2-m3600-t0-l1.asl.json"
    new = "run-a4-i15-b1_5-m3600-t0-l1.asl.json"

    code, _, err = _run(capsys, "check", "--template", template_copy, "--catalog", catalog_path)
    assert code == 1
    assert f"statemachines/{new} is missing" in err
    assert f"statemachines/{old.name} is stale" in err
    assert "+  RunMachineA4I15B1p5M3600T0L1:" in err

    assert _run(capsys, "write", "--template", template_copy, "--catalog", catalog_path)[0] == 0
    assert not old.exists()
    assert json.loads((definitions / new).read_text())["States"]["Attempt"]["Retry"][0]["BackoffRate"] == 1.5
    assert _run(capsys, "check", "--template", template_copy, "--catalog", catalog_path)[0] == 0
    (definitions / new).write_text("{}")
    code, _, err = _run(capsys, "check", "--template", template_copy, "--catalog", catalog_path)
    assert (code, f"statemachines/{new} is out of date" in err) == (1, True)


def test_the_local_stacks_catalog_renders_its_definitions_inline() -> None:
    raw = _raw_catalog()
    block = codegen.render(parse_catalog(raw), {}, inline_definitions=True)
    machines = {k: v for k, v in (parse_yaml(block) or {}).items() if v["Type"] == "AWS::Serverless::StateMachine"}
    assert machines
    for logical_id, machine in machines.items():
        assert "DefinitionUri" not in machine["Properties"]
        assert machine["Properties"]["Definition"]["States"]["Attempt"]["Type"] == "Task", logical_id


# ---------------------------------------------------------------- S3 and bus trigger rules
def _s3_job(*triggers: dict[str, str]) -> dict[str, Any]:
    return {"name": "drop", "description": "d", "backend": {"type": "batch"}, "triggers": {"s3": list(triggers)}}


KEYS = ["incoming/a.csv", "incoming/.csv", "incoming/a.csv.bak", "incoming/sub/b.csv", "other/a.csv", "a.csv"]


@pytest.mark.parametrize(
    ("trigger", "matched"),
    [
        ({"prefix": "incoming/"}, {"incoming/a.csv", "incoming/.csv", "incoming/a.csv.bak", "incoming/sub/b.csv"}),
        ({"suffix": ".csv"}, {"incoming/a.csv", "incoming/.csv", "incoming/sub/b.csv", "other/a.csv", "a.csv"}),
        ({"prefix": "incoming/", "suffix": ".csv"}, {"incoming/a.csv", "incoming/.csv", "incoming/sub/b.csv"}),
    ],
)
def test_an_s3_rule_matches_exactly_the_keys_its_trigger_watches(trigger: dict[str, str], matched: set[str]) -> None:
    """Through the local stack's matcher (moto's, checked against EventBridge's documented examples
    in tests/local/test_delivery.py): keys under a prefix no job watches invoke nothing."""
    (rule,) = _rendered_resources({"jobs": [_s3_job(trigger)]}).values()
    pattern = json.loads(json.dumps(rule["Properties"]["EventPattern"]).replace('{"Ref": "InputBucket"}', '"in"'))
    event = {"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {"name": "in"}}}
    hits = {
        key for key in KEYS if pattern_matches(pattern, event | {"detail": event["detail"] | {"object": {"key": key}}})
    }
    assert hits == matched
    other_bucket = event | {"detail": {"bucket": {"name": "other"}, "object": {"key": "incoming/a.csv"}}}
    assert not pattern_matches(pattern, other_bucket)


def test_wildcard_characters_in_a_prefix_or_suffix_are_matched_literally() -> None:
    trigger = S3Trigger(prefix="a*b\\", suffix="*.csv")
    assert codegen.s3_key_condition(trigger) == [{"wildcard": "a\\*b\\\\*\\*.csv"}]
    pattern = {"detail": {"object": {"key": codegen.s3_key_condition(trigger)}}}
    for key, expected in {"a*b\\x*.csv": True, "aXb\\x*.csv": False, "a*b\\x.csv": False}.items():
        assert pattern_matches(pattern, {"detail": {"object": {"key": key}}}) is expected, key


def test_each_rule_names_its_job_and_trigger_and_keeps_the_dlq_and_retry_policy() -> None:
    raw = {"jobs": [_s3_job({"prefix": "in/"}, {"suffix": ".json"})]}
    raw["jobs"][0]["triggers"]["bus"] = [
        {"pattern": {"detail-type": ["Go"]}},
        {"pattern": {"source": ["acme"], "detail": {"n": [{"numeric": [">", 1]}]}}},
    ]
    resources = _rendered_resources(raw)
    assert list(resources) == ["S3RuleDrop0", "S3RuleDrop1", "BusRuleDrop0", "BusRuleDrop1"]
    for logical_id, resource in resources.items():
        props = resource["Properties"]
        kind, index = ("s3" if logical_id.startswith("S3") else "bus"), int(logical_id[-1])
        assert props["Name"]["Fn::Sub"][0] == f"jl-${{StackToken}}-{kind}-drop-{index}"
        (target,) = props["Targets"]
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["EventDeadLetterQueue", "Arn"]}}
        assert target["RetryPolicy"] == {"MaximumRetryAttempts": 4, "MaximumEventAgeInSeconds": 3600}
        placeholder = "<aws.events.event.json>"
        assert json.loads(target["InputTransformer"]["InputTemplate"].replace(placeholder, "{}")) == {
            "job": "drop",
            "trigger": index,
            "event": {},
        }
        assert ("EventBusName" in props) is (kind == "bus")
    # A pattern that names no source never matches jobline's own notifications; one that does is kept.
    assert resources["BusRuleDrop0"]["Properties"]["EventPattern"] == {
        "source": [{"anything-but": ["jobline"]}],
        "detail-type": ["Go"],
    }
    assert resources["BusRuleDrop1"]["Properties"]["EventPattern"] == raw["jobs"][0]["triggers"]["bus"][1]["pattern"]


def test_rule_names_fit_eventbridge_at_the_catalog_maximum() -> None:
    raw = {"jobs": [{**_s3_job(*[{"prefix": f"p{i}/"} for i in range(12)]), "name": "a" * 40}]}
    for resource in _rendered_resources(raw).values():
        name = resource["Properties"]["Name"]["Fn::Sub"][0].replace("${StackToken}", "0" * 8)
        assert len(name) <= 64


def test_the_template_counts_its_own_rules_against_the_per_bus_quota() -> None:
    assert codegen.handwritten_rules(TEMPLATE.read_text()) == {"default": 4}  # the state change rules
    raw = {"jobs": [_s3_job(*[{"prefix": f"p{i}/"} for i in range(297)])]}
    _render(raw, {"default": 3})
    with pytest.raises(CatalogError, match=r"297 generated rules and 4 of the template on the default bus"):
        _render(raw, {"default": 4})


def test_at_most_30_rules_with_wildcards_per_bus() -> None:
    raw = {"jobs": [_s3_job(*[{"prefix": f"p{i}/", "suffix": ".csv"} for i in range(30)])]}
    _render(raw)
    raw["jobs"][0]["triggers"]["s3"].append({"prefix": "p30/", "suffix": ".csv"})
    with pytest.raises(CatalogError, match=r"31 rules with wildcards .* on the default bus pass EventBridge's 30"):
        _render(raw)
