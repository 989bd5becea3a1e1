"""template.yaml's submitting part keeps the submitter's promises: a queue per submit API that
outlives its function and keeps what cannot be submitted, the rate each API takes from a stack
parameter whose default is AWS's, one poller pair per queue, and only the calls the submitter makes."""

from __future__ import annotations

from typing import Any

import pytest

from jobline.backends import BACKENDS
from jobline.settings import SUBMIT_APIS, Settings
from tests.cfn import resource, template

QUEUES = {
    "SubmitJob": "SubmitBatchJobQueue",
    "SubmitServiceJob": "SubmitServiceJobQueue",
    "CreateProcessingJob": "CreateProcessingJobQueue",
    "StartJobRun": "StartJobRunQueue",
}
RATE_PARAMETERS = {
    "SubmitJob": "SubmitJobRate",
    "SubmitServiceJob": "SubmitServiceJobRate",
    "CreateProcessingJob": "CreateProcessingJobRate",
    "StartJobRun": "StartJobRunRate",
}


def test_every_backend_has_a_submit_api_with_a_queue_and_a_rate() -> None:
    assert {backend.submit_api for backend in BACKENDS.values()} == set(SUBMIT_APIS) == set(QUEUES)


@pytest.mark.parametrize(("api", "queue_id"), sorted(QUEUES.items()))
def test_each_submit_queue_keeps_what_it_cannot_submit_and_alarms_on_age(api: str, queue_id: str) -> None:
    props = resource(queue_id)["Properties"]
    assert props["SqsManagedSseEnabled"] is True
    function_timeout = int(template()["Globals"]["Function"]["Timeout"])
    assert int(props["VisibilityTimeout"]) >= 6 * function_timeout
    assert props["MessageRetentionPeriod"] == 1209600
    assert props["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["SubmitDeadLetterQueue", "Arn"]}
    assert int(props["RedrivePolicy"]["maxReceiveCount"]) >= 1000  # handed back while capacity is spent
    alarm = resource(f"{queue_id}AgeAlarm")["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateAgeOfOldestMessage")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert variables[SUBMIT_APIS[api][0].upper()] == {"Ref": queue_id}


def test_the_submitter_polls_each_queue_with_two_batches_at_most() -> None:
    props = resource("SubmitterFunction")["Properties"]
    events = props["Events"]
    assert {event["Properties"]["Queue"]["Fn::GetAtt"][0] for event in events.values()} == set(QUEUES.values())
    for event in events.values():
        assert event["Type"] == "SQS"
        assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert event["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 2}
    parameters = template()["Parameters"]
    assert parameters["SubmitterConcurrency"]["MinValue"] >= 2 * len(events)  # no batch throttled


@pytest.mark.parametrize(("api", "parameter"), sorted(RATE_PARAMETERS.items()))
def test_each_rate_comes_from_a_parameter_defaulting_to_awss_quota(api: str, parameter: str) -> None:
    variables = resource("SubmitterFunction")["Properties"]["Environment"]["Variables"]
    field = SUBMIT_APIS[api][1]
    assert variables[field.upper()] == {"Ref": parameter}
    spec = template()["Parameters"][parameter]
    assert spec["Default"] == Settings.model_fields[field].default
    assert spec["MinValue"] >= 1


def _allowed(function_id: str) -> dict[str, Any]:
    allowed: dict[str, Any] = {}
    for policy in resource(function_id)["Properties"]["Policies"]:
        for statement in policy["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for action in actions:
                allowed.setdefault(action, []).append(statement)
    return allowed


def test_the_submitter_may_make_only_the_calls_it_makes() -> None:
    allowed = _allowed("SubmitterFunction")
    assert set(allowed) == {
        "dynamodb:UpdateItem",
        "dynamodb:PutItem",
        "batch:SubmitJob",
        "batch:TagResource",
        "batch:SubmitServiceJob",
        "batch:ListJobs",
        "batch:ListServiceJobs",
        "sagemaker:CreateProcessingJob",
        "sagemaker:DescribeProcessingJob",
        "sagemaker:AddTags",
        "iam:PassRole",
        "glue:StartJobRun",
        "glue:GetJobRuns",
        "states:SendTaskFailure",
        "sqs:SendMessage",
        "sqs:ChangeMessageVisibility",
    }
    (table,) = allowed["dynamodb:UpdateItem"]
    assert table["Resource"] == {"Fn::GetAtt": ["RunTable", "Arn"]}
    assert allowed["dynamodb:PutItem"] == [table]
    (passes,) = allowed["iam:PassRole"]
    assert passes["Resource"] == {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}
    assert passes["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    (parks,) = allowed["sqs:SendMessage"]
    assert parks["Resource"] == {"Fn::GetAtt": ["EventDeadLetterQueue", "Arn"]}
    (hands_back,) = allowed["sqs:ChangeMessageVisibility"]
    assert hands_back["Resource"] == [{"Fn::GetAtt": [queue, "Arn"]} for queue in QUEUES.values()]
    (fails,) = allowed["states:SendTaskFailure"]
    assert "stateMachine:${AWS::StackName}-run-" in fails["Resource"]["Fn::Sub"]
