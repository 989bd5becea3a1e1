"""The state change rules and the stream mappings let through only what can change something,
and everything that can: checked against each backend's status vocabulary (its rank table) and
matched as the local stack matches patterns (moto's matcher, jobline_local's adaptations)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from jobline.backends import batch, batch_service, glue
from jobline.status import Reason, RunStatus
from jobline_local.adaptations.delivery import pattern_matches
from tests.cfn import resource
from tests.unit.conftest import sample

# The status a submitter's claim leaves a row in: a backend status mapping to it cannot move the row.
CLAIMED = (RunStatus.STARTING, Reason.IN_QUEUE)
# rule -> (the detail field it filters, the backend's statuses, their mapping, a sample event)
RULES: dict[str, tuple[str, Any, Any, str]] = {
    "BatchJobStateChange": (
        "status",
        batch.BATCH_RANK,
        lambda s: batch.map_batch_status(s, None, None),
        "batch-job-running.json",
    ),
    "ServiceJobStateChange": (
        "status",
        batch_service.SERVICE_RANK,
        lambda s: batch_service.map_service_status(s, None),
        "batch-service-job-succeeded.json",
    ),
    "GlueJobStateChange": ("state", glue.GLUE_RANK, glue.map_glue_state, "glue-job-state-change-failed.json"),
}


def rule_pattern(rule: str) -> dict[str, Any]:
    pattern = copy.deepcopy(resource("StateChangeFunction")["Properties"]["Events"][rule]["Properties"]["Pattern"])
    if "jobQueue" in pattern.get("detail", {}):  # the stack's queues (intrinsics): the samples' queue
        pattern["detail"]["jobQueue"] = [sample(RULES[rule][3])["detail"]["jobQueue"]]
    return pattern


@pytest.mark.parametrize("rule", sorted(RULES))
def test_a_rule_drops_exactly_the_statuses_that_cannot_move_a_claimed_row(rule: str) -> None:
    field, ranks, mapping, event_file = RULES[rule]
    pattern = rule_pattern(rule)
    kept = set(pattern["detail"][field])
    assert kept <= set(ranks)
    for status in ranks:
        event = sample(event_file)
        event["detail"][field] = status
        passes = pattern_matches(pattern, event)
        assert passes == (status in kept), status
        if not passes:
            assert mapping(status) == CLAIMED, status  # dropped: it would leave the row as the claim made it
        elif rule == "BatchJobStateChange":
            assert mapping(status) != CLAIMED, status  # kept: it moves the row (status or reason)


def test_service_jobs_keep_the_capacity_loop_statuses() -> None:
    kept = rule_pattern("ServiceJobStateChange")["detail"]["status"]
    assert {"RUNNABLE", "SCHEDULED"} <= set(kept)  # SCHEDULED -> RUNNABLE changes the reason back


def test_state_change_rules_retry_for_a_day() -> None:
    for event in resource("StateChangeFunction")["Properties"]["Events"].values():
        assert event["Properties"]["RetryPolicy"]["MaximumEventAgeInSeconds"] == 86_400  # EventBridge's most


def stream_record(old: dict[str, str] | None, new: dict[str, str]) -> dict[str, Any]:
    image = lambda row: {k: {"S": v} for k, v in row.items()}  # noqa: E731
    dynamodb: dict[str, Any] = {"NewImage": image(new), "Keys": {"pk": {"S": "RUN#r"}}}
    if old is not None:
        dynamodb["OldImage"] = image(old)
    return {"eventName": "MODIFY" if old else "INSERT", "eventSource": "aws:dynamodb", "dynamodb": dynamodb}


def mapping_filters(mapping: str) -> list[dict[str, Any]]:
    return [json.loads(f["Pattern"]) for f in resource(mapping)["Properties"]["FilterCriteria"]["Filters"]]


@pytest.mark.parametrize(
    ("old", "new", "notify"),
    [
        ({"status": "RUNNING"}, {"status": "SUCCEEDED"}, True),
        ({"status": "PENDING"}, {"status": "STOPPED"}, True),
        ({"status": "SUCCEEDED"}, {"status": "SUCCEEDED", "note": "a gap filled later"}, False),
        ({"status": "STARTING"}, {"status": "RUNNING"}, False),
        (None, {"status": "PENDING"}, False),
    ],
)
def test_notify_runs_once_per_run_that_ends(old: dict[str, str] | None, new: dict[str, str], notify: bool) -> None:
    filters = mapping_filters("NotifyFunctionRunTableStream")
    record = stream_record(old and {**old, "record_type": "RUN"}, {**new, "record_type": "RUN"})
    assert any(pattern_matches(f, record) for f in filters) is notify
