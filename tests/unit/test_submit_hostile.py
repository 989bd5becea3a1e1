"""No user value can change the structure of a request the submitter sends (issue 10.2): hostile
argument values (quotes, backslashes, braces, NULs, the old attempt marker, JSONPath text, huge
values) reach each backend's API exactly as given, beside exactly one JOBLINE_ATTEMPT, in a request
botocore's model accepts - or the run is refused before anything is written."""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.stub import Stubber
from hypothesis import example, given, settings
from hypothesis import strategies as st

from jobline.backends import BACKENDS
from jobline.errors import InvalidArguments
from tests.unit.backends.conftest import request, sent_requests, submit_params

OLD_MARKER = "\u0000jobline-attempt\u0000"  # split the service payload before issue 10
PIECES = [OLD_MARKER, '"', "\\", '\\"', "{", "}", "[", "]", ",", "\u0000", '"}],"TrainingJobName":"x', "$.run_id"]
PIECES += ['","Value":"1"},{"Name":"JOBLINE_ATTEMPT', "States.Format('{}', $.attempt)", "\n\r\t", "\u2028", "é€😀"]
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=16)  # no lone surrogates
HOSTILE = st.one_of(
    st.lists(st.one_of(st.sampled_from(PIECES), TEXT), max_size=8).map("".join),
    st.builds(lambda piece, times: piece * times, st.sampled_from(PIECES), st.integers(100, 1500)),
)
# The API each backend calls, its answer, and what the job sees of the argument and the attempt.
CALLS = {
    "word-count": ("batch", "submit_job", "SubmitJob", {"jobId": "j", "jobName": "n", "jobArn": "a"}),
    "train-model": ("batch", "submit_service_job", "SubmitServiceJob", {"jobId": "j", "jobName": "n", "jobArn": "a"}),
    "clean-data": ("sagemaker", "create_processing_job", "CreateProcessingJob", {"ProcessingJobArn": "a"}),
    "glue-etl": ("glue", "start_job_run", "StartJobRun", {"JobRunId": "r"}),
}
BATCH = {
    "type": "batch",
    "command": ["python", "-c", "print(1)"],
    "job_queue": "arn:aws:batch:us-east-1:123456789012:job-queue/q",
    "job_definition": "arn:aws:batch:us-east-1:123456789012:job-definition/d:1",
}


def seen_by_the_job(job: str, sent: dict[str, Any]) -> tuple[dict[str, str], str]:
    """(the job's variables, the request's name) as the backend receives them."""
    if job == "word-count":
        variables = [(e["name"], e["value"]) for e in sent["containerOverrides"]["environment"]]
        assert [name for name, _ in variables].count("JOBLINE_ATTEMPT") == 1
        return dict(variables), sent["jobName"]
    if job == "train-model":
        training = json.loads(sent["serviceRequestPayload"])
        assert sent["clientToken"] == sent["jobName"] == training["TrainingJobName"]
        return training["Environment"], training["TrainingJobName"]
    if job == "clean-data":
        return sent["Environment"], sent["ProcessingJobName"]
    arguments = sent["Arguments"]
    variables = {k.removeprefix("--").upper(): v for k, v in arguments.items()}
    return variables, f"{arguments['--jobline_run_id']}-{arguments['--jobline_attempt']}"


@settings(max_examples=40, deadline=None, derandomize=True)
@given(value=HOSTILE, job=st.sampled_from(sorted(CALLS)))
@example(value=OLD_MARKER * 3, job="train-model")
@example(value='"}],"TrainingJobName":"x', job="train-model")
def test_hostile_values_reach_every_backend_as_given(value: str, job: str) -> None:
    spec: dict[str, Any] = {"parameters": {"note": {"max_length": 4096}}}
    req = request(job, backend=BATCH, **spec) if job == "word-count" else request(job, **spec)
    try:
        params = submit_params(req, {"note": value})
    except InvalidArguments:
        return  # refused before anything is written (a SageMaker value over 256, a payload over 10 KiB)
    service, method, operation, answer = CALLS[job]
    client = boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    sent = sent_requests(client, operation)
    with Stubber(client) as stub:  # validates the request against botocore's model
        stub.add_response(method, answer)
        BACKENDS[req.job.backend.type].submit(params, req.run_id, 2, lambda _: client)
        stub.assert_no_pending_responses()
    (request_sent,) = sent
    variables, name = seen_by_the_job(job, request_sent)
    assert (variables["JOBLINE_ARG_NOTE"], variables["JOBLINE_ATTEMPT"], name) == (value, "2", f"{req.run_id}-2")
