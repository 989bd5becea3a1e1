"""No user value can change the structure of a request (issue 10.2): hostile arguments and trigger
events (quotes, backslashes, braces, NULs, the old attempt marker, JSONPath and intrinsic text,
huge values) go through the real run.asl.json on moto's engine, and the request each backend
receives is exactly the intended one - or the run is refused before anything is written."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jobline.errors import InvalidArguments
from jobline.triggers import RunRequest, Trigger
from tests.aws_resources import job_spec
from tests.integration.conftest import BatchScript, make_deps, wait_for_execution
from tests.integration.test_backends_state_machine import TRAINING, Script, backends, deps_for, script  # noqa: F401
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
OLD_MARKER = "\u0000jobline-attempt\u0000"  # split the service payload before issue 10
PIECES = [
    OLD_MARKER,
    '"',
    "\\",
    '\\"',
    "{}",
    "{",
    "}",
    "[",
    "]",
    ",",
    "'",
    "\u0000",
    "\\u0000",
    '","Value":"1"},{"Name":"JOBLINE_ATTEMPT',
    '"}],"TrainingJobName":"x',
    "States.Format('{}', $.attempt)",
    "$.run_id",
    "$$.Execution.Id",
    "\n\r\t",
    "\u2028",
    "é€😀",
]
# Lone surrogates are left out: they cannot be encoded in the UTF-8 of any request to AWS.
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=16)
HOSTILE = st.one_of(
    st.lists(st.one_of(st.sampled_from(PIECES), TEXT), max_size=8).map("".join),
    st.builds(lambda piece, times: piece * times, st.sampled_from(PIECES), st.integers(100, 1500)),
)
PROPERTY = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PARAMETERS = {"first": {"max_length": 4096}, "second": {"max_length": 4096}}


def manual(job: Any, event: dict[str, Any], arguments: dict[str, str]) -> RunRequest:
    trigger = Trigger(type="manual", key=str(uuid.uuid4()), source="test", event=event)
    return RunRequest(job=job, trigger=trigger, arguments=arguments)


def job_environment(request: RunRequest, inline_limit: int) -> dict[str, str]:
    """What the job must see: the documented JOBLINE_* variables (docs/ARCHITECTURE.md, section 2)."""
    body = json.dumps(request.trigger.event, separators=(",", ":"))
    event = (
        {"JOBLINE_TRIGGER_EVENT": body}
        if len(body.encode()) <= inline_limit
        else {"JOBLINE_TRIGGER_EVENT_S3_URI": f"s3://run-data/{stored_event_key(request.run_id, body)}"}
    )
    return {
        "JOBLINE_RUN_ID": request.run_id,
        "JOBLINE_JOB_NAME": request.job.name,
        "JOBLINE_MAX_ATTEMPTS": "1",
        **event,
        **{f"JOBLINE_ARG_{name.upper()}": value for name, value in request.arguments.items()},
        "JOBLINE_ATTEMPT": "1",
    }


def stored_event_key(run_id: str, body: str) -> str:
    """Where jobline.runs stores a large trigger event: content-addressed under the run."""
    return f"trigger-events/{run_id}/{hashlib.sha256(body.encode()).hexdigest()[:32]}.json"


def start_or_refuse(deps: Any, request: RunRequest) -> bool:
    """Start the run; a refusal must come before anything is written."""
    try:
        deps.starter.start(request)
    except InvalidArguments:
        assert deps.table.get_run(request.run_id) is None
        return False
    return True


@PROPERTY
@given(first=HOSTILE, second=HOSTILE, event_value=HOSTILE)
@example(first=OLD_MARKER, second=OLD_MARKER * 3, event_value=OLD_MARKER)
def test_a_service_jobs_payload_is_the_intended_training_request(
    backends: dict[str, Any],  # noqa: F811
    script: Script,  # noqa: F811
    first: str,
    second: str,
    event_value: str,
) -> None:
    deps = deps_for(backends, script, "train-model", parameters=PARAMETERS)
    request = manual(deps.catalog.jobs[0], {"value": event_value}, {"first": first, "second": second})
    if not start_or_refuse(deps, request):
        return
    job = wait_until(
        lambda: next((j for j in script.service if j.name == f"{request.run_id}-1"), None), what="the service job"
    )

    assert json.loads(job.payload) == {
        **TRAINING,
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "RoleArn": backends["settings"].sagemaker_role_arn,
        "TrainingJobName": f"{request.run_id}-1",
        "Environment": job_environment(request, inline_limit=256),
        "Tags": [{"Key": "jobline:run-id", "Value": request.run_id}, {"Key": "jobline:attempt", "Value": "1"}],
    }
    script.end_service_job(job, "succeed")
    assert wait_for_execution(backends, request.run_id)["status"] == "SUCCEEDED"


@PROPERTY
@given(first=HOSTILE, second=HOSTILE, event_value=HOSTILE)
@example(first=OLD_MARKER, second='"},{"Name":"JOBLINE_ATTEMPT","Value":"9', event_value="\\")
def test_a_batch_jobs_environment_is_the_intended_one(
    stack: dict[str, Any], batch_script: BatchScript, first: str, second: str, event_value: str
) -> None:
    deps = make_deps(stack, [job_spec(parameters=PARAMETERS)])
    request = manual(deps.catalog.jobs[0], {"value": event_value}, {"first": first, "second": second})
    if not start_or_refuse(deps, request):
        return
    assert wait_for_execution(stack, request.run_id)["status"] == "SUCCEEDED"

    (submitted,) = [s for s in batch_script.submitted if s["name"] == f"{request.run_id}-1"]
    intended = job_environment(request, inline_limit=stack["settings"].inline_event_limit_bytes)
    # Step Functions' batch:submitJob.sync adds MANAGED_BY_AWS itself (moto's engine does the same).
    environment = [e for e in submitted["overrides"]["environment"] if e["name"] != "MANAGED_BY_AWS"]
    assert environment == [{"name": k, "value": v} for k, v in intended.items()]
