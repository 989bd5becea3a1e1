"""Adaptations of the Step Functions engine's service integrations
(adaptations.stepfunctions_integrations), each against moto's original."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from moto import mock_aws

from jobline_local.adaptations import hooks
from tests.aws_resources import training_job_request
from tests.local.moto_support import (
    GLUE_SYNC,
    PROCESSING_SYNC,
    ROLE,
    SFN,
    client,
    finish,
    make_batch,
    make_glue_job,
    make_service_queue,
    original,
    processing_sync,
    run_asl,
    task,
    wait_execution,
    wait_status,
)
from tests.waiting import wait_until


def test_optimized_batch_integration_casing() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch import (
        StateTaskServiceBatch,
    )

    pristine = original(StateTaskServiceBatch, "_normalise_parameters")
    parameters = {"JobName": "job-1", "JobQueue": "q"}
    pristine(None, parameters)
    assert parameters == {"JobName": "job-1", "JobQueue": "q"}, "moto now translates ASL parameters itself"

    hooks["batch_job"] = lambda job: finish(job, 0)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        queue, definition = make_batch()
        role = client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        asl = {
            "StartAt": "Submit",
            "States": {
                "Submit": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::batch:submitJob.sync",
                    "Parameters": {
                        "JobName": "job-1",
                        "JobQueue": queue,
                        "JobDefinition": definition,
                        "ContainerOverrides": {"Environment": [{"Name": "A", "Value": "1"}]},
                    },
                    "End": True,
                }
            },
        }
        sfn = client("stepfunctions")
        machine = sfn.create_state_machine(name="m", definition=json.dumps(asl), roleArn=role)["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=machine, name="e")["executionArn"]
        status = wait_status(sfn, execution)
        assert status["status"] == "SUCCEEDED", status
        assert json.loads(status["output"])["Status"] == "SUCCEEDED"  # PascalCase output, as AWS returns it


def test_sagemaker_processing_sync(monkeypatch: pytest.MonkeyPatch, adapted: dict[str, Any]) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory

    from jobline_local.adaptations.stepfunctions_engine import forget_parsed

    with mock_aws(config=SFN):
        monkeypatch.setattr(
            state_task_factory, "state_task_service_for", original(state_task_factory, "state_task_service_for")
        )
        forget_parsed()  # the program's tasks are built once per definition: with moto's factory here
        pristine = run_asl(PROCESSING_SYNC, "T", ROLE)
        assert pristine["status"] == "FAILED"
        assert "Unsupported sync callback procedure" in json.dumps(pristine["failures"] or pristine.get("cause", ""))
        monkeypatch.undo()
        forget_parsed()

        jobs: list[Any] = []
        adapted["processing_job"] = jobs.append
        arn = run_asl(PROCESSING_SYNC, "T", ROLE, wait=False)
        job = wait_until(lambda: jobs and jobs[0])
        time.sleep(0.6)  # the engine polls DescribeProcessingJob while the job is InProgress
        assert client("stepfunctions").describe_execution(executionArn=arn)["status"] == "RUNNING"
        job.processing_job_status = "Completed"
        done = wait_execution(arn)
        assert done["status"] == "SUCCEEDED"
        output = json.loads(done["output"])
        assert output["ProcessingJobStatus"] == "Completed"
        assert output["Environment"] == {"A": "1"}
        assert output["RoleArn"] == ROLE["role"]
        assert isinstance(output["CreationTime"], int)

        states = processing_sync("p-2")
        adapted["processing_job"] = lambda job: (
            setattr(job, "processing_job_status", "Failed") or setattr(job, "failure_reason", "AlgorithmError: boom")
        )
        failed = run_asl(states, "T", ROLE)
        assert failed["status"] == "FAILED"
        (failure,) = failed["failures"]
        assert failure["error"] == "States.TaskFailed"
        cause = json.loads(failure["cause"])
        assert (cause["ProcessingJobStatus"], cause["FailureReason"]) == ("Failed", "AlgorithmError: boom")

        jobs.clear()
        adapted["processing_job"] = jobs.append
        states = processing_sync("p-3")
        arn = run_asl(states, "T", ROLE, wait=False)
        wait_until(lambda: jobs)
        client("stepfunctions").stop_execution(executionArn=arn)
        wait_until(lambda: jobs[0].processing_job_status == "Stopping")


def test_glue_sync(monkeypatch: pytest.MonkeyPatch, adapted: dict[str, Any]) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_glue import (
        StateTaskServiceGlue,
    )

    def stopped(job: Any, run: Any) -> None:
        run.status = "STOPPED"

    adapted["glue_job_run"] = stopped
    with mock_aws(config=SFN):
        make_glue_job(max_runs=5)
        monkeypatch.setattr(
            StateTaskServiceGlue, "_sync_to_start_job_run", original(StateTaskServiceGlue, "_sync_to_start_job_run")
        )
        arn = run_asl(GLUE_SYNC, "T", wait=False)
        # (describe_execution itself fails on the datetimes moto leaves in this output: list the status)
        machine = arn.replace(":execution:", ":stateMachine:").rsplit(":", 1)[0]
        listed = wait_until(
            lambda: [
                e["status"]
                for e in client("stepfunctions").list_executions(stateMachineArn=machine)["executions"]
                if e["status"] != "RUNNING"
            ]
        )
        assert listed == ["SUCCEEDED"], "moto no longer takes a STOPPED run for success"
        monkeypatch.undo()
        result = run_asl(GLUE_SYNC, "T")
        assert result["status"] == "FAILED"
        (failure,) = result["failures"]
        assert failure["error"] == "States.TaskFailed"
        cause = json.loads(failure["cause"])
        assert (cause["JobRunState"], cause["JobName"]) == ("STOPPED", "g")
        assert isinstance(cause["StartedOn"], int)


def test_aws_sdk_integrations(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_aws_sdk
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    submit = task(
        "arn:aws:states:::aws-sdk:batch:submitServiceJob",
        {
            "JobName": "j",
            "JobQueue": "training",
            "ServiceJobType": "SAGEMAKER_TRAINING",
            "ServiceRequestPayload": json.dumps(training_job_request("j")),
            "Tags": {"jobline:attempt": "1"},
        },
    )
    submit["T"].pop("End")
    submit["T"].update(Next="D", ResultSelector={"JobId.$": "$.JobId"})
    submit["D"] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::aws-sdk:batch:describeServiceJob",
        "Parameters": {"JobId.$": "$.JobId"},
        "End": True,
    }
    missing = task("arn:aws:states:::aws-sdk:batch:describeServiceJob", {"JobId": "nope"})
    with mock_aws(config=SFN):
        make_service_queue()
        for name in ("_normalise_parameters", "_normalise_response"):
            monkeypatch.setattr(StateTaskServiceAwsSdk, name, original(StateTaskServiceAwsSdk, name))
        monkeypatch.setattr(
            state_task_service_aws_sdk,
            "_SERVICE_ERROR_NAMES",
            original(state_task_service_aws_sdk, "_SERVICE_ERROR_NAMES"),
        )
        pristine = run_asl(submit, "T")
        assert pristine["status"] == "FAILED", "moto now translates aws-sdk parameters itself"
        camel = task("arn:aws:states:::aws-sdk:batch:describeServiceJob", {"jobId": "nope"})
        assert run_asl(camel, "T")["failures"][0]["error"] == "batch.ClientException"
        monkeypatch.undo()

        described = run_asl(submit, "T")
        assert described["status"] == "SUCCEEDED"
        output = json.loads(described["output"])
        assert (output["JobName"], output["Status"], output["RetryStrategy"]) == ("j", "SUBMITTED", {"Attempts": 1})
        assert output["Tags"] == {"jobline:attempt": "1"}  # a map: keys are data, not members
        assert run_asl(missing, "T")["failures"][0]["error"] == "Batch.ClientException"


def test_batch_sync_polls_through_transient_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """A throttle, a 5xx or a lost response of the .sync task's own DescribeJobs does not fail the
    task (AWS watches the job itself); a refusal still does."""
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError, ReadTimeoutError
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch import (
        StateTaskServiceBatch,
    )

    faults: list[Exception] = []
    make_api_call = BaseClient._make_api_call

    def failing_describe(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if operation == "DescribeJobs" and faults:
            raise faults.pop(0)
        return make_api_call(self, operation, params)

    def refused(code: str, status: int) -> ClientError:
        error = {"Code": code, "Message": "injected"}
        metadata = {"HTTPStatusCode": status, "RequestId": "injected", "HTTPHeaders": {}}
        return ClientError({"Error": error, "ResponseMetadata": metadata}, "DescribeJobs")

    monkeypatch.setattr(BaseClient, "_make_api_call", failing_describe)
    hooks["batch_job"] = lambda job: finish(job, 0)
    with mock_aws(config=SFN):
        queue, definition = make_batch()
        parameters = {"JobName": "job-1", "JobQueue": queue, "JobDefinition": definition}
        submit = task("arn:aws:states:::batch:submitJob.sync", parameters)
        with monkeypatch.context() as pristine:
            name = "_build_sync_resolver"
            pristine.setattr(StateTaskServiceBatch, name, original(StateTaskServiceBatch, name))
            faults[:] = [refused("TooManyRequestsException", 429)]
            failed = run_asl(submit, "T")
            assert failed["failures"][0]["error"] == "Batch.TooManyRequestsException", failed["failures"]

        faults[:] = [
            refused("TooManyRequestsException", 429),
            refused("ServerException", 500),
            ReadTimeoutError(endpoint_url="http://batch"),
        ]
        succeeded = run_asl(submit, "T")
        assert succeeded["status"] == "SUCCEEDED", succeeded
        assert faults == []
        assert len(client("batch").list_jobs(jobQueue=queue, jobStatus="SUCCEEDED")["jobSummaryList"]) == 2

        faults[:] = [refused("ClientException", 400)]
        assert run_asl(submit, "T")["failures"][0]["error"] == "Batch.ClientException"


def test_an_unanswered_service_call_is_an_sdk_client_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    """A callback Task's call that ran but whose answer was lost fails the task with the service's
    SdkClientException, which a retrier matches; the retry makes the call again."""
    from botocore.client import BaseClient
    from botocore.exceptions import ReadTimeoutError
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sqs import (
        StateTaskServiceSqs,
    )

    lost: list[str] = []
    make_api_call = BaseClient._make_api_call

    def losing_answers(self: Any, operation: str, params: dict[str, Any]) -> Any:
        response = make_api_call(self, operation, params)
        if operation in lost:
            lost.remove(operation)
            raise ReadTimeoutError(endpoint_url=self.meta.endpoint_url)
        return response

    def waiting(resource: str, parameters: dict[str, Any], retried: str | None = None) -> dict[str, Any]:
        states = task(f"arn:aws:states:::{resource}.waitForTaskToken", parameters)
        states["T"]["TimeoutSeconds"] = 30
        if retried:
            states["T"]["Retry"] = [{"ErrorEquals": [retried], "IntervalSeconds": 1, "MaxAttempts": 1}]
        return states

    def error(resource: str, parameters: dict[str, Any]) -> str:
        return run_asl(waiting(resource, parameters), "T")["failures"][0]["error"]

    monkeypatch.setattr(BaseClient, "_make_api_call", losing_answers)
    with mock_aws(config=SFN):
        queue = client("sqs").create_queue(QueueName="submit")["QueueUrl"]
        client("dynamodb").create_table(
            TableName="runs",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        send = {"QueueUrl": queue, "MessageBody": {"try.$": "$$.State.RetryCount", "token.$": "$$.Task.Token"}}
        register = {
            "TableName": "runs",
            "Key": {"pk": {"S": "RUN#r"}},
            "UpdateExpression": "SET slot_token = :token",
            "ExpressionAttributeValues": {":token": {"S.$": "$$.Task.Token"}},
        }
        sqs, sdk = "sqs:sendMessage", "aws-sdk:dynamodb:updateItem"
        with monkeypatch.context() as pristine:
            for task_class in (StateTaskServiceSqs, StateTaskServiceAwsSdk):
                pristine.setattr(task_class, "_from_error", original(task_class, "_from_error"))
            lost[:] = ["SendMessage", "UpdateItem"]
            names = [error(sqs, send), error(sdk, register)]
            assert names == ["States.Runtime"] * 2, "moto now names a lost response itself"

        lost[:] = ["SendMessage", "UpdateItem"]
        assert [error(sqs, send), error(sdk, register)] == ["SQS.SdkClientException", "DynamoDb.SdkClientException"]
        refused = {**register, "ConditionExpression": "attribute_not_exists(pk)"}
        assert error(sdk, refused) == "DynamoDb.ConditionalCheckFailedException"  # a refusal keeps its name

        # Retried, the call runs again with a new try's token: the first try's message was sent too.
        lost[:] = ["SendMessage"]
        retried = client("sqs").create_queue(QueueName="retried")["QueueUrl"]
        execution = run_asl(waiting(sqs, {**send, "QueueUrl": retried}, "SQS.SdkClientException"), "T", wait=False)
        bodies: list[dict[str, Any]] = []

        def received() -> bool:
            got = client("sqs").receive_message(QueueUrl=retried, MaxNumberOfMessages=10).get("Messages", [])
            bodies.extend(json.loads(m["Body"]) for m in got)
            return len(bodies) >= 2

        wait_until(received, timeout=20, what="both tries' messages")
        tokens = {body["try"]: body["token"] for body in bodies}
        assert sorted(tokens) == [0, 1]
        assert tokens[0] != tokens[1]
        client("stepfunctions").send_task_success(taskToken=tokens[1], output="{}")
        assert wait_execution(execution)["status"] == "SUCCEEDED"
