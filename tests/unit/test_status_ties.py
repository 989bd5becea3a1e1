"""Same-second events, every backend: whatever order the events of one second arrive in, and
however often, the row ends as the ordered sequence leaves it (the backend's own order decides),
as DynamoDB applies them (moto)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from jobline.backends import AttemptDetail, Observation, backend_of_event
from jobline.state_changes import parse_event
from tests.aws_resources import REGION, create_run_table
from tests.unit.conftest import sample
from tests.unit.event_lab import Lab, stored

RUN_ID = "tied-job-0123456789abcdef0123"
SECOND = "2026-11-21T00:10:00Z"  # every event of a history carries this one time
EPOCH_MS = 1_795_237_000_000

Seen = Observation | AttemptDetail
Builder = Callable[[int, str], dict[str, Any]]


def _event(name: str, **detail: Any) -> dict[str, Any]:
    event = copy.deepcopy(sample(name))
    event["time"] = SECOND
    event["detail"].update(detail)
    return event


def batch(attempt: int, status: str) -> dict[str, Any]:
    event = _event("batch-job-running.json", status=status, jobId=f"job-{attempt}", startedAt=None)
    event["detail"]["tags"].update({"jobline:run-id": RUN_ID, "jobline:attempt": str(attempt)})
    if status in ("RUNNING", "SUCCEEDED", "FAILED"):
        event["detail"]["startedAt"] = EPOCH_MS + attempt
    if status in ("SUCCEEDED", "FAILED"):
        event["detail"].update(stoppedAt=EPOCH_MS + 60 + attempt, statusReason="Essential container in task exited")
        event["detail"]["container"]["exitCode"] = 0 if status == "SUCCEEDED" else 1
    return event


def service(attempt: int, status: str) -> dict[str, Any]:
    event = _event("batch-service-job-succeeded.json", jobName=f"{RUN_ID}-{attempt}", jobId=f"job-{attempt}")
    detail = event["detail"]
    detail.update(status=status, statusReason=f"Received status from SageMaker: {status}")
    if status not in ("RUNNING", "SUCCEEDED", "FAILED"):
        detail.update(attempts=[], startedAt=None, stoppedAt=None)
        detail.pop("latestAttempt")
    elif status == "RUNNING":
        detail.update(stoppedAt=None, attempts=[{**detail["attempts"][0], "stoppedAt": None}])
    return event


def training(attempt: int, status: str) -> dict[str, Any]:
    secondary = {"InProgress": "Uploading", "Completed": "Completed", "Failed": "Failed"}[status]
    event = _event("sagemaker-training-job-completed.json", TrainingJobStatus=status, SecondaryStatus=secondary)
    event["detail"]["Tags"] = {"jobline:run-id": RUN_ID, "jobline:attempt": str(attempt)}
    return event


def processing(attempt: int, status: str) -> dict[str, Any]:
    name = f"{RUN_ID}-{attempt}"
    event = _event("sagemaker-processing-job-completed.json", ProcessingJobName=name, ProcessingJobStatus=status)
    if status == "Failed":
        event["detail"]["FailureReason"] = "AlgorithmError: exit code 1"
    if status == "InProgress":
        event["detail"].pop("ProcessingEndTime")
    return event


def glue_event(attempt: int, status: str) -> dict[str, Any]:
    return _event("glue-job-state-change-failed.json", state=status, jobRunId=GLUE_RUNS[attempt])


GLUE_RUNS: dict[int, str] = {}
# Each backend's statuses of one attempt, in the order AWS moves through them; the last one ends it.
HISTORIES: dict[str, tuple[Builder, list[str], str, str]] = {
    "batch": (batch, ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"], "SUCCEEDED", "FAILED"),
    "batch_service": (
        service,
        ["SUBMITTED", "PENDING", "RUNNABLE", "SCHEDULED", "STARTING", "RUNNING"],
        *("SUCCEEDED", "FAILED"),
    ),
    "sagemaker_training": (training, ["InProgress"], "Completed", "Failed"),
    "sagemaker_processing": (processing, ["InProgress"], "Completed", "Failed"),
    "glue": (glue_event, ["WAITING", "STARTING", "RUNNING", "STOPPING"], "SUCCEEDED", "FAILED"),
}


@pytest.fixture(scope="module")
def aws() -> Iterator[tuple[Any, Lab]]:
    """Glue traces its events through the job run's arguments: real job runs, on moto, next to
    the run table the events are applied to."""
    with mock_aws():
        client = boto3.client("glue", region_name=REGION)
        client.create_job(Name="jobline-example", Role="r", Command={"Name": "glueetl", "ScriptLocation": "s3://b/s"})
        for attempt in (1, 2, 3):
            arguments = {"--jobline_run_id": RUN_ID, "--jobline_attempt": str(attempt)}
            GLUE_RUNS[attempt] = client.start_job_run(JobName="jobline-example", Arguments=arguments)["JobRunId"]
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_run_table(ddb, "runs")
        yield client, Lab(ddb)


@pytest.fixture
def glue(aws: tuple[Any, Lab]) -> Any:
    return aws[0]


@pytest.fixture
def lab(aws: tuple[Any, Lab]) -> Lab:
    return aws[1]


def observe(event: dict[str, Any], glue: Any) -> Seen:
    parsed = parse_event(event)
    seen = backend_of_event(parsed).observe(parsed, glue)
    assert seen is not None
    return seen


@st.composite
def same_second_histories(draw: st.DrawFn) -> tuple[str, int, list[dict[str, Any]]]:
    backend = draw(st.sampled_from(sorted(HISTORIES)))
    build, going, succeeded, failed = HISTORIES[backend]
    max_attempts = draw(st.integers(1, 3))
    used = draw(st.integers(1, max_attempts))
    succeeds = draw(st.booleans())
    events = []
    for attempt in range(1, used + 1):
        final = succeeded if attempt == used and succeeds else failed
        events += [build(attempt, status) for status in [*going, final]]
    cut = draw(st.integers(1, len(events)))  # the history so far: the run may still be going
    return backend, max_attempts, events[:cut]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=same_second_histories(), data=st.data())
def test_same_second_events_end_in_the_ordered_row_for_every_backend(
    glue: Any, lab: Lab, history: tuple[str, int, list[dict[str, Any]]], data: st.DataObject
) -> None:
    _, max_attempts, events = history
    ordered = [observe(event, glue) for event in events]
    duplicates = data.draw(st.lists(st.sampled_from(ordered), max_size=len(ordered)))
    delivered = data.draw(st.permutations(ordered + duplicates))
    expected = lab.deliver_all(lab.new_run(max_attempts), ordered)
    assert stored(lab.deliver_all(lab.new_run(max_attempts), delivered)) == stored(expected)


def test_a_completed_training_job_never_shows_uploading_whatever_arrived_last(glue: Any, lab: Lab) -> None:
    uploading, completed = observe(training(1, "InProgress"), glue), observe(training(1, "Completed"), glue)
    for order in ([uploading, completed], [completed, uploading]):
        detail = lab.deliver_all(lab.new_run(), order)["attempts"]["1"]["training"]
        assert (detail["training_status"], detail["secondary_status"]) == ("Completed", "Completed")


@pytest.mark.parametrize("backend", sorted(set(HISTORIES) - {"sagemaker_training"}))
def test_the_last_status_of_one_second_wins_in_either_order(glue: Any, lab: Lab, backend: str) -> None:
    build, going, succeeded, _ = HISTORIES[backend]
    running, done = observe(build(1, going[-1]), glue), observe(build(1, succeeded), glue)
    for order in ([running, done], [done, running]):
        row = lab.deliver_all(lab.new_run(max_attempts=1), order)
        assert (row["status"], row["backend_status"]) == ("SUCCEEDED", succeeded)
        assert row["attempts"]["1"]["backend_status"] == succeeded
