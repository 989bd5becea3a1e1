"""Catalog validation: a bad catalog fails with a message naming the job and the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from jobline.catalog import load_catalog, parse_catalog
from jobline.errors import CatalogError, UnknownJobError
from jobline.settings import PACKAGED_CATALOG

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


def test_retry_delays_grow_by_backoff_and_are_capped() -> None:
    job = parse_catalog({"jobs": [GOOD]}).jobs[0]
    assert job.retry.delays() == [10, 20]
    capped = parse_catalog(with_change("retry.attempts", 5)).jobs[0]
    assert capped.retry.delays() == [10, 20, 25, 25]


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
