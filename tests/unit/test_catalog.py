"""Catalog validation: a bad catalog fails with a message naming the job and the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from jobline import schedule_expressions
from jobline.catalog import load_catalog, parse_catalog
from jobline.errors import CatalogError, CatalogProblem, UnknownJobError
from jobline.settings import PACKAGED_CATALOG
from jobline_local.emulated import scheduler
from tests.cfn import ROOT

DEMO_CATALOG = ROOT / "examples" / "demo-jobs.yaml"

GOOD: dict[str, Any] = {
    "name": "word-count",
    "description": "count words",
    "backend": {"type": "batch", "command": ["wc"], "vcpu": 1, "memory_mib": 2048},
    "parameters": {"output_prefix": {"default": "out/"}},
    "retry": {"attempts": 3, "interval_seconds": 10, "backoff_rate": 2, "max_delay_seconds": 25},
    "triggers": {"s3": [{"prefix": "in/"}], "schedule": [{"name": "hourly", "expression": "rate(1 hour)"}]},
}


def with_change(path: str, value: Any) -> dict[str, Any]:
    job = copy.deepcopy(GOOD)
    *parents, leaf = path.split(".")
    node = job
    for part in parents:
        node = node[part]
    node[leaf] = value
    return {"jobs": [job]}


def test_the_packaged_catalog_is_valid() -> None:
    catalog = load_catalog(PACKAGED_CATALOG)
    assert catalog.jobs
    assert catalog.get("csv-word-count").triggers.s3[0].prefix == "incoming/"


def test_the_demo_catalog_is_valid() -> None:
    assert load_catalog(DEMO_CATALOG).jobs


def test_retry_delays_grow_by_backoff_and_are_capped() -> None:
    job = parse_catalog({"jobs": [GOOD]}).jobs[0]
    assert job.retry.delays() == [10, 20]
    capped = parse_catalog(with_change("retry.attempts", 5)).jobs[0]
    assert capped.retry.delays() == [10, 20, 25, 25]


def test_a_fractional_retry_delay_is_what_step_functions_waits_unrounded() -> None:
    """The retrier's own delays: min(interval x backoff^(n-1), cap), 15 s x 1.5 is 22.5 s."""
    job = parse_catalog(with_change("retry", {"attempts": 4, "interval_seconds": 15, "backoff_rate": 1.5})).jobs[0]
    assert job.retry.delays() == [15, 22.5, 33.75]


@pytest.mark.parametrize("field", ["interval_seconds", "max_delay_seconds"])
def test_a_retry_interval_or_cap_under_one_second_is_refused(field: str) -> None:
    """Step Functions refuses IntervalSeconds 0 at CreateStateMachine (and moto with it)."""
    with pytest.raises(CatalogError) as error:
        parse_catalog(with_change(f"retry.{field}", 0))
    (problem,) = error.value.problems
    assert (problem.job, problem.field) == ("word-count", f"retry.{field}")


def test_a_job_has_no_concurrency_limit_unless_it_declares_one() -> None:
    assert parse_catalog({"jobs": [GOOD]}).jobs[0].max_concurrent_runs is None
    assert parse_catalog(with_change("max_concurrent_runs", 2)).jobs[0].max_concurrent_runs == 2


def test_the_policy_id_names_every_field_of_the_retry_policy() -> None:
    job = parse_catalog({"jobs": [GOOD]}).jobs[0]
    assert job.policy_id == "a3-i10-b2-m25-t0-l0"
    limited = parse_catalog(with_change("max_concurrent_runs", 4)).jobs[0]
    assert limited.policy_id == "a3-i10-b2-m25-t0-l1"
    retry = {"attempts": 2, "interval_seconds": 15, "backoff_rate": 1.5, "retry_on_timeout": True}
    assert parse_catalog(with_change("retry", retry)).jobs[0].policy_id == "a2-i15-b1_5-m3600-t1-l0"
    # Two rates that print alike at a few digits still get two ids.
    close = [{**retry, "backoff_rate": rate} for rate in (1.0000001, 1.0000002)]
    ids = {parse_catalog(with_change("retry", r)).jobs[0].policy_id for r in close}
    assert len(ids) == 2


def test_an_interval_over_the_delay_cap_is_refused_not_shortened() -> None:
    with pytest.raises(CatalogError) as error:
        parse_catalog(with_change("retry", {"attempts": 2, "interval_seconds": 7200}))
    (problem,) = error.value.problems
    assert (problem.job, problem.field) == ("word-count", "retry")
    assert "interval_seconds 7200 is over max_delay_seconds 3600" in problem.rule
    raised = {"attempts": 2, "interval_seconds": 7200, "max_delay_seconds": 7200}
    assert parse_catalog(with_change("retry", raised)).jobs[0].retry.delays() == [7200]


@pytest.mark.parametrize(
    ("expression", "timezone"),
    [
        ("cron(99 2 * * ? *)", "UTC"),  # minute 99
        ("cron(0 2 * * * *)", "UTC"),  # neither day field is ?
        ("cron(0 2 ? * MON#6 *)", "UTC"),
        ("cron(0 2 * *)", "UTC"),
        ("rate(0 minutes)", "UTC"),
        ("at(2026-02-30T10:00:00)", "UTC"),
        ("at(2026-02-01)", "UTC"),
        ("cron(0 2 * * ? *)", "Mars/Base"),
    ],
)
def test_a_schedule_the_local_scheduler_cannot_parse_is_refused(expression: str, timezone: str) -> None:
    schedule = [{"name": "nightly", "expression": expression, "timezone": timezone}]
    with pytest.raises(CatalogError) as error:
        parse_catalog(with_change("triggers.schedule", schedule))
    (problem,) = error.value.problems
    field = "expression" if timezone == "UTC" else "timezone"
    assert (problem.job, problem.field) == ("word-count", f"triggers.schedule.0.{field}")
    with pytest.raises(schedule_expressions.ExpressionError):
        schedule_expressions.Expression(expression, timezone)


def test_the_catalog_and_the_local_scheduler_share_one_parser() -> None:
    assert scheduler.Expression is schedule_expressions.Expression
    for expression in ("cron(0 2 ? * MON-FRI *)", "cron(0/15 * L * ? 2030)", "rate(1 day)", "at(2030-01-01T00:00:00)"):
        schedule = [{"name": "ok", "expression": expression, "timezone": "Europe/Paris"}]
        assert parse_catalog(with_change("triggers.schedule", schedule)).jobs[0].triggers.schedule[0].expression


def test_a_catalog_error_carries_each_problem_with_its_job_field_and_rule() -> None:
    raw = with_change("timeout_seconds", 5)
    raw["jobs"].append({**copy.deepcopy(GOOD), "name": "other", "colour": "red"})
    with pytest.raises(CatalogError) as error:
        parse_catalog(raw)
    assert error.value.problems == (
        CatalogProblem("Input should be greater than or equal to 60", "word-count", "timeout_seconds"),
        CatalogProblem("Extra inputs are not permitted", "other", "colour"),
    )
    assert str(error.value).splitlines() == [
        "job 'word-count': field timeout_seconds: Input should be greater than or equal to 60",
        "job 'other': field colour: Extra inputs are not permitted",
    ]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("retry.attempts", 0, "field retry.attempts"),
        ("timeout_seconds", 5, "field timeout_seconds"),
        ("name", "Bad_Name", "field name"),
        ("backend.type", "kubernetes", "field backend"),
        ("triggers.s3", [{}], "needs a prefix, a suffix or both"),
        ("triggers.schedule", [{"name": "x", "expression": "every day"}], "is not a schedule expression"),
        ("triggers.schedule", [{"name": "x", "expression": "rate(1 day)", "arguments": {"nope": "1"}}], "not declared"),
        ("parameters", {"api_token": {}}, "looks like a secret"),
        ("environment", {"DB_PASSWORD": "x"}, "looks like a secret"),
        ("environment", {"JOBLINE_RUN_ID": "x"}, "prefix is jobline's"),
        ("parameters", {"day": {"required": True}}, "cannot supply required parameters"),
        ("triggers.bus", [{"pattern": {"account": ["1"]}}], "pattern.account: a bus trigger may only match"),
    ],
)
def test_a_catalog_error_names_the_job_and_the_field(path: str, value: Any, expected: str) -> None:
    with pytest.raises(CatalogError) as error:
        parse_catalog(with_change(path, value))
    assert "job 'word-count'" in str(error.value) or "job 'Bad_Name'" in str(error.value)
    assert expected in str(error.value)


@pytest.mark.parametrize(
    ("pattern", "rule"),
    [  # what EventBridge refuses at PutRule, or what the local stack could not evaluate as it does
        ({"detail": {"s": [{"contains": "x"}]}}, "pattern.detail.s[0].contains: 'contains' is not an EventBridge"),
        ({"detail": {"s": [{"prefix": ["a", "b"]}]}}, "pattern.detail.s[0].prefix: prefix takes a string"),
        ({"detail": {"s": [{"prefix": {"ignore-case": "a"}}]}}, "takes a string or {'equals-ignore-case': string}"),
        ({"detail": {"s": [{"wildcard": "a**b"}]}}, "consecutive wildcard characters"),
        ({"detail": {"s": [{"wildcard": "a\\?b"}]}}, "a backslash may only escape * or \\"),
        ({"detail": {"s": [{"anything-but": ["a", 1]}]}}, "only strings or only numbers"),
        ({"detail": {"s": [{"anything-but": {"exists": True}}]}}, "nests one of prefix, suffix"),
        ({"detail": {"s": [{"anything-but": True}]}}, "takes a string, a number, a list"),
        ({"detail": {"n": [{"numeric": ["<", 5, ">", 1]}]}}, "a range is a lower bound then a greater upper"),
        ({"detail": {"n": [{"numeric": [">", "5"]}]}}, "takes [op, number]"),
        ({"detail": {"n": [{"numeric": [">", 2e9]}]}}, "outside EventBridge's numeric range"),
        ({"detail": {"n": [{"exists": "yes"}]}}, "exists: takes true or false"),
        ({"detail": {"ip": [{"cidr": "10.0.0.1/24"}]}}, "is not a CIDR block"),
        ({"detail": {"s": [{"prefix": "a", "suffix": "b"}]}}, "exactly one operator"),
        ({"detail": {"s": []}}, "an empty list matches nothing"),
        ({"detail": {"s": "x"}}, "must be an object or a list of values"),
        ({"detail": {"s": [["x"]]}}, "a list inside a list"),
        ({"detail": {}}, "cannot be empty"),
        ({"$or": [{"source": ["a"]}]}, "$or takes a list of at least two"),
        ({"$or": [{"source": ["a"]}, {"account": ["1"]}]}, "pattern.$or[1].account: a bus trigger may only match"),
        ({"detail": {"Ref": ["x"]}}, "CloudFormation would read the field name 'Ref'"),
        ({"detail": {"s": ["x" * 2100]}}, "over EventBridge's 2048"),
    ],
)
def test_a_bus_pattern_eventbridge_would_not_evaluate_fails_at_load(pattern: dict[str, Any], rule: str) -> None:
    with pytest.raises(CatalogError) as error:
        parse_catalog(with_change("triggers.bus", [{"pattern": pattern}]))
    message = str(error.value)
    assert message.startswith("job 'word-count': field triggers.bus.0.pattern: ")
    assert rule in message


def test_every_documented_pattern_form_loads() -> None:
    """The forms of EventBridge's documented examples (each checked against the local stack's
    matcher in tests/local/test_delivery.py)."""
    pattern = {
        "source": ["acme", {"prefix": "acme."}],
        "detail-type": [{"anything-but": {"wildcard": "*Test*"}}],
        "detail": {
            "a": [{"suffix": {"equals-ignore-case": ".PNG"}}, {"equals-ignore-case": "x"}, None, "", 3, True],
            "b": [{"numeric": [">", 0, "<=", 5]}, {"numeric": ["=", 3.018e2]}, {"exists": False}],
            "c": [{"cidr": "2001:db8::/32"}, {"wildcard": "dir/*.png"}, {"anything-but": [100, 200]}],
            "$or": [{"d": [{"anything-but": {"equals-ignore-case": "a"}}]}, {"e": [{"exists": True}]}],
        },
    }
    assert parse_catalog(with_change("triggers.bus", [{"pattern": pattern}])).jobs[0].triggers.bus[0].pattern == pattern


def test_duplicate_job_names_are_rejected() -> None:
    with pytest.raises(CatalogError, match="declared twice"):
        parse_catalog({"jobs": [GOOD, GOOD]})


def test_an_unreadable_catalog_says_which_file(tmp_path: Any) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text("jobs: [\n")
    with pytest.raises(CatalogError, match=str(path)):
        load_catalog(path)


def test_an_unknown_job_lists_the_known_ones() -> None:
    with pytest.raises(UnknownJobError, match=r"unknown job 'nope'.*word-count"):
        parse_catalog({"jobs": [GOOD]}).get("nope")
