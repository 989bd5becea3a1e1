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
        ("triggers.bus", [{"pattern": {"account": ["1"]}}], "pattern may only match"),
    ],
)
def test_a_catalog_error_names_the_job_and_the_field(path: str, value: Any, expected: str) -> None:
    with pytest.raises(CatalogError) as error:
        parse_catalog(with_change(path, value))
    assert "job 'word-count'" in str(error.value) or "job 'Bad_Name'" in str(error.value)
    assert expected in str(error.value)


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
