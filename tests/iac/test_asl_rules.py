"""statemachines/run.asl.json and jobline's run rules agree: every status, reason and rank literal
of the definition is one jobline.status defines, and every backend status the definition
classifies ends (or retries) the run the way jobline.status does.

The definition cannot import Python, so the agreement is checked here; tests/iac/rules.py is the
one place that knows where jobline keeps each rule.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from functools import lru_cache
from typing import Any

import pytest

from tests.cfn import ASL, resource
from tests.iac.asl_literals import literals, problems
from tests.iac.choices import follow
from tests.iac.rules import rules

# Where the definition writes a run's outcome, and where it goes on to another attempt.
RECORD_OUTCOME = "RecordOutcome"
SCHEDULE_RETRY = "ScheduleRetry"
# After DescribeServiceJob: a job that is not done yet is stopped at the guard timeout.
STOP_UNFINISHED_SERVICE_JOB = "StopUnfinishedServiceJob"
# Failure reasons as AWS writes them, and words that are not a timeout.
AWS_REASONS = (
    "MaxRuntimeExceeded: the job exceeded its maximum runtime",
    "AlgorithmError: exit code 1",
    "ClientError: image not found",
    "Essential container in task exited",
)


@lru_cache(maxsize=1)
def definition() -> dict[str, Any]:
    return json.loads(ASL.read_text())


# ---------------------------------------------------------------- every literal is jobline's


def test_every_rule_literal_is_one_jobline_defines() -> None:
    assert problems(definition(), rules()) == []


def test_the_walk_finds_the_literals_of_every_kind() -> None:
    kinds = {item.kind for item in literals(definition()) if not isinstance(item, str)}
    assert kinds >= {
        "run status",
        "reason",
        "rank",
        "outcome",
        "backend type",
        "batch_service status",
        "glue status",
        "sagemaker_processing status",
        "runtime exceeded pattern",
        "batch timeout reason",
    }


def _set(asl: dict[str, Any], path: str, value: Any) -> None:
    """Set the value at a JSONPath the walk reports ($.States.X.Key['k'][0].Y)."""
    steps = [int(i) if i else (name or key) for name, key, i in re.findall(r"\.(\w+)|\['([^']+)'\]|\[(\d+)\]", path)]
    node: Any = asl
    for step in steps[:-1]:
        node = node[step]
    node[steps[-1]] = value


MUTATIONS = [
    ("MarkAttemptStarting", ":reason", "Submited"),
    ("MarkAttemptStarting", ":starting", "STARTED"),
    ("MarkAttemptStarting", ":rank", 20),
    ("MarkWaitingForSlot", ":pending", 1),
    ("RecordOutcome", ":terminal", 31),
    ("WaitForServiceJob", ":stopped", "STOP"),
]


@pytest.mark.parametrize(("state", "placeholder", "value"), MUTATIONS)
def test_a_changed_row_literal_is_named_with_its_state_and_path(state: str, placeholder: str, value: Any) -> None:
    asl = copy.deepcopy(definition())
    (attribute,) = asl["States"][state]["Parameters"]["ExpressionAttributeValues"][placeholder].items()
    type_ = attribute[0]
    asl["States"][state]["Parameters"]["ExpressionAttributeValues"][placeholder][type_] = str(value)
    where = f"{state}: $.States.{state}.Parameters.ExpressionAttributeValues['{placeholder}'].{type_} = "
    found = problems(asl, rules())
    assert found
    assert found[0].startswith(where + repr(value if type_ == "S" else int(value))), found


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("$.States.RunStillLive.Choices[0].Or[3].StringEquals", "STOPPING"),
        ("$.States.SubmitByBackend.Choices[3].StringEquals", "glue_etl"),
        ("$.States.ServiceJobDescribed.Choices[0].StringEquals", "SUCCEEDED_"),
        ("$.States.ClassifyGlueFailure.Choices[0].StringEquals", "TIMED_OUT"),
        ("$.States.ClassifyFailure.Choices[0].And[1].StringMatches", "Job attempt duration exceeded*"),
        ("$.States.ClassifyProcessingFailure.Choices[0].And[1].StringMatches", "*MaxRuntime*Exceeded*"),
        ("$.States.ServiceJobDescribed.Choices[1].And[2].Or[1].StringMatches", "*imeout*"),
        ("$.States.AttemptFailed.Result", {"status": "FAILED", "reason": "Job failed"}),
        ("$.States.Succeeded.Result", {"status": "SUCCESS", "reason": "Completed"}),
    ],
)
def test_a_changed_choice_or_result_literal_is_named_with_its_state_and_path(path: str, value: Any) -> None:
    asl = copy.deepcopy(definition())
    _set(asl, path, value)
    (problem,) = problems(asl, rules())
    assert problem.startswith(f"{path.split('.')[2]}: {path} = {value!r}")


def test_a_literal_in_an_unknown_place_or_of_unknown_meaning_is_a_problem() -> None:
    asl = copy.deepcopy(definition())
    asl["States"]["SubmitAttempt"]["Parameters"]["Tags"]["jobline:status"] = "RUNNING"
    asl["States"]["FirstAttempt"]["ResultPath"] = "$.first"
    asl["States"]["ClassifyGlueFailure"]["Choices"][0]["Variable"] = "$.failure.job.State"
    values = asl["States"]["MarkWaitingForSlot"]["Parameters"]["ExpressionAttributeValues"]
    values[":extra"] = {"S": "x"}
    found = problems(asl, rules())
    assert len(found) == 4, found
    assert any(p.startswith("SubmitAttempt: $.States.SubmitAttempt.Parameters.Tags['jobline:status']") for p in found)
    assert any(p.startswith("FirstAttempt: $.States.FirstAttempt.Result") for p in found)
    assert any(p.startswith("ClassifyGlueFailure: $.States.ClassifyGlueFailure.Choices[0]") for p in found)
    assert any("[':extra']: bound to no attribute" in p for p in found)


def test_every_list_of_final_statuses_is_jobline_terminal() -> None:
    terminal = set(rules().terminal)
    states = definition()["States"]
    still_live = {c["StringEquals"] for c in states["RunStillLive"]["Choices"][0]["Or"]}
    assert still_live == terminal
    waiting = states["WaitForServiceJob"]["Parameters"]
    assert "IN (:succeeded, :failed, :timeout, :stopped)" in waiting["ConditionExpression"]
    values = waiting["ExpressionAttributeValues"]
    assert {values[p]["S"] for p in (":succeeded", ":failed", ":timeout", ":stopped")} == terminal
    # The run table stream's filter (template.yaml) passes exactly the transitions to a final status.
    (pattern,) = resource("NotifyFunctionRunTableStream")["Properties"]["FilterCriteria"]["Filters"]
    images = json.loads(pattern["Pattern"])["dynamodb"]
    assert set(images["OldImage"]["status"]["S"][0]["anything-but"]) == terminal
    assert set(images["NewImage"]["status"]["S"]) == terminal


# ---------------------------------------------------------------- the same classification


def _outcome(start: str, data: dict[str, Any]) -> tuple[str, tuple[str, str] | None]:
    """The state the definition reaches from `start`, and the outcome it records there, if any."""
    name = follow(definition(), start, data)
    state = definition()["States"][name]
    if state["Type"] == "Pass" and state.get("ResultPath") == "$.outcome":
        return name, (state["Result"]["status"], state["Result"]["reason"])
    return name, None


def _ends_run(outcome_state: str, status: str, attempt: int, max_attempts: int, retry_on_timeout: bool) -> bool:
    data = {"attempt": attempt, "max_attempts": max_attempts, "retry_on_timeout": retry_on_timeout}
    end = follow(definition(), definition()["States"][outcome_state]["Next"], data)
    assert end in (RECORD_OUTCOME, SCHEDULE_RETRY), f"{outcome_state} ({status}) leads to {end}"
    return end == RECORD_OUTCOME


def _agrees(start: str, data: dict[str, Any], expected: tuple[Any, str]) -> list[str]:
    """Disagreements of the definition with jobline for one input: the outcome, then whether the
    run ends, for a first and a last attempt, with and without retry_on_timeout."""
    status, reason = expected[0].value, str(expected[1])
    name, outcome = _outcome(start, data)
    if outcome != (status, reason):
        return [f"{start} {data}: the ASL reaches {name} {outcome}, jobline says {(status, reason)}"]
    wrong = []
    for attempt, retry_on_timeout in itertools.product((1, 3), (False, True)):
        row = {"max_attempts": 3, "retry_on_timeout": retry_on_timeout}
        ends = rules().is_final_attempt(row, attempt, expected[0])
        if _ends_run(name, status, attempt, 3, retry_on_timeout) != ends:
            wrong.append(
                f"{start} {data}: attempt {attempt}/3, retry_on_timeout={retry_on_timeout}: "
                f"the ASL {'ends' if not ends else 'retries'} the run from {name}, jobline "
                f"{'ends' if ends else 'retries'} it"
            )
    return wrong


def _reasons() -> list[str | None]:
    """No reason, AWS's own, each backend's timeout signal at the start of and inside a reason, and
    reasons that merely mention a timeout (a job's own failure, not its runtime limit)."""
    exceeded, batch_timeout = rules().max_runtime_exceeded, rules().batch_timeout_reason
    signals = [
        f"{exceeded}: the job exceeded its maximum runtime",
        f"Received status from SageMaker: {exceeded}: Training job exceeded its maximum runtime",
        batch_timeout,
        f"{batch_timeout} (3600s)",
        f"Essential container in task exited: {batch_timeout}",
    ]
    lookalikes = ["AlgorithmError: timeout waiting for data", "ClientError: timed out", "max runtime of 60 s reached"]
    return [None, *AWS_REASONS, *signals, *lookalikes]


def _final(backend: str, status: str, *args: Any) -> bool:
    return rules().backends[backend].outcome(status, *args)[0].value in rules().terminal


def test_failed_batch_jobs_are_classified_as_jobline_does() -> None:
    outcome = rules().backends["batch"].outcome
    timeout = rules().batch_timeout_reason
    wrong = []
    for reason, exit_code in itertools.product([*_reasons(), timeout, f"{timeout} (3600s)"], (None, 0, 1, 137)):
        job: dict[str, Any] = {"Status": "FAILED"}
        if reason is not None:
            job["StatusReason"] = reason
        if exit_code is not None:
            job["Container"] = {"ExitCode": exit_code}
        data = {"backend": "batch", "failure": {"job": job}}
        wrong += _agrees("ClassifyByBackend", data, outcome("FAILED", reason, exit_code))
    assert wrong == []


def test_failed_processing_jobs_are_classified_as_jobline_does() -> None:
    backend = rules().backends["sagemaker_processing"]
    ended = sorted(s for s in backend.statuses if _final("sagemaker_processing", s) and s != "Completed")
    assert ended, "the .sync integration fails the task for these"
    wrong = []
    for status, failure_reason, exit_message in itertools.product(ended, _reasons(), _reasons()[:3]):
        job = {"ProcessingJobStatus": status}
        if failure_reason is not None:
            job["FailureReason"] = failure_reason
        if exit_message is not None:
            job["ExitMessage"] = exit_message
        data = {"backend": "sagemaker_processing", "failure": {"job": job}}
        # The state change handler classifies by FailureReason, else ExitMessage (jobline.state_changes).
        wrong += _agrees("ClassifyByBackend", data, backend.outcome(status, failure_reason or exit_message))
    assert wrong == []


def test_failed_glue_runs_are_classified_as_jobline_does() -> None:
    backend = rules().backends["glue"]
    ended = sorted(s for s in backend.statuses if _final("glue", s) and s != "SUCCEEDED")
    assert "STOPPED" in ended
    wrong = []
    for state in ended:
        data = {"backend": "glue", "failure": {"job": {"JobRunState": state, "ErrorMessage": "boom"}}}
        wrong += _agrees("ClassifyByBackend", data, backend.outcome(state))
    assert wrong == []


def test_described_service_jobs_are_classified_as_jobline_does() -> None:
    backend = rules().backends["batch_service"]
    wrong = []
    for status, reason in itertools.product(sorted(backend.statuses), _reasons()):
        described = {"Status": status, **({"StatusReason": reason} if reason is not None else {})}
        data = {"described": described}
        if _final("batch_service", status, reason):
            wrong += _agrees("ServiceJobDescribed", data, backend.outcome(status, reason))
        elif (reached := follow(definition(), "ServiceJobDescribed", data)) != STOP_UNFINISHED_SERVICE_JOB:
            wrong.append(f"{status} ({reason}) is not final in jobline, but the ASL reaches {reached}")
    assert wrong == []


def test_handed_back_service_outcomes_are_classified_as_jobline_does() -> None:
    """The state change handler resumes the execution with jobline's outcome of the attempt."""
    backend = rules().backends["batch_service"]
    outcomes = {
        backend.outcome(status, reason)
        for status, reason in itertools.product(sorted(backend.statuses), _reasons())
        if _final("batch_service", status, reason)
    }
    assert len(outcomes) >= 3
    wrong = []
    for status, reason in sorted(outcomes):
        data = {"service_result": {"status": status.value, "reason": str(reason)}}
        wrong += _agrees("ServiceJobOutcome", data, (status, reason))
    assert wrong == []


def test_succeeded_tasks_record_joblines_success() -> None:
    for backend in rules().backends.values():
        success = [backend.outcome(s) for s in backend.statuses if s in ("SUCCEEDED", "Completed")]
        assert success
        for status, reason in success:
            assert definition()["States"]["Succeeded"]["Result"] == {"status": status.value, "reason": str(reason)}
