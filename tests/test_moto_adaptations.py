"""One test per adaptation in jobline_local.moto_adaptations. Each checks that the pinned moto
still behaves as the adaptation assumes (through moto's original code, kept in `originals`),
and that the adaptation closes the gap. A moto upgrade that changes either fails here."""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import moto
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from jobline_local import moto_adaptations
from tests.aws_resources import REGION, create_training_queue
from tests.waiting import wait_until

ACCOUNT = "123456789012"


@pytest.fixture(autouse=True)
def adapted(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    moto_adaptations.apply()
    hooks = dict(moto_adaptations.hooks)
    yield moto_adaptations.hooks
    moto_adaptations.hooks.update(hooks)


def original(owner: Any, name: str) -> Any:
    return moto_adaptations.originals[(owner, name)]


def client(service: str, endpoint: str | None = None) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)


def test_pins_the_moto_it_was_written_for() -> None:
    assert moto.__version__ == moto_adaptations.PINNED_MOTO
    replaced = {name for _, name in moto_adaptations.originals}
    assert replaced == {
        "_normalise_parameters",
        "_normalise_response",
        "send_to_targets",
        "_send_event_bridge_message",
        "start",
        "_get_container_property",
        "_container_details",
        "invoke",
        "parse",
        "boto_client_for",
        "list_of_moto_modules",
        "get_backend_for_host",
        # the newer backends
        "visitPayload_binding_value",
        "_eval_integration_pattern",
        "_eval_sync",
        "state_task_service_for",
        "_sync_to_start_job_run",
        "_SERVICE_ERROR_NAMES",
        "createserviceenvironment",
        "describeserviceenvironments",
        "updateserviceenvironment",
        "deleteserviceenvironment",
        "submitservicejob",
        "describeservicejob",
        "terminateservicejob",
        "listservicejobs",
        "createjobqueue",
        "submitjob",
        "describe",
        "create_processing_job",
        "response_object",
        "stop_processing_job",
        "start_job_run",
        "as_dict",
        "batch_stop_job_run",
    }, "an adaptation was added or removed: give it a test here"


# ---------------------------------------------------------------- Batch in Step Functions
def make_batch() -> tuple[str, str]:
    iam, batch = client("iam"), client("batch")
    role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    env = batch.create_compute_environment(computeEnvironmentName="local-ce", type="UNMANAGED", serviceRole=role)
    queue = batch.create_job_queue(
        jobQueueName="local-q",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}],
    )["jobQueueArn"]
    definition = batch.register_job_definition(
        jobDefinitionName="local-d",
        type="container",
        containerProperties={
            "image": "x",
            "command": ["true"],
            "environment": [{"name": "FROM_DEFINITION", "value": "1"}],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
        },
    )["jobDefinitionArn"]
    return queue, definition


def finish(job: Any, exit_code: int) -> None:
    job.exit_code = exit_code
    job.job_started_at = job.job_created_at
    job._mark_stopped(success=exit_code == 0)


def test_optimized_batch_integration_casing() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch import (
        StateTaskServiceBatch,
    )

    pristine = original(StateTaskServiceBatch, "_normalise_parameters")
    parameters = {"JobName": "job-1", "JobQueue": "q"}
    pristine(None, parameters)
    assert parameters == {"JobName": "job-1", "JobQueue": "q"}, "moto now translates ASL parameters itself"

    moto_adaptations.hooks["batch_job"] = lambda job: finish(job, 0)
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


def wait_status(sfn: Any, execution: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.1)
    raise AssertionError("execution still running")


# ---------------------------------------------------------------- EventBridge -> Lambda targets
def put_lambda_rule(events: Any, state: str = "ENABLED") -> None:
    events.put_rule(Name="r", EventPattern=json.dumps({"source": ["demo"]}), State=state)
    arn = f"arn:aws:lambda:{REGION}:123456789012:function:f"
    events.put_targets(Rule="r", Targets=[{"Id": "t", "Arn": arn}])


def test_rule_lambda_targets() -> None:
    from moto.events.models import Rule, events_backends

    delivered: list[tuple[str, dict[str, Any], Any]] = []
    with mock_aws():
        events = client("events")
        put_lambda_rule(events)
        rule = events_backends["123456789012"][REGION].event_buses["default"].rules["r"]
        event = {
            "source": "demo",
            "detail-type": "x",
            "detail": {},
            "time": time.time(),
            "id": "1",
            "ingestion-time": 0,
        }
        with pytest.raises(NotImplementedError):
            original(Rule, "send_to_targets")(rule, event, False)

        moto_adaptations.hooks["lambda_target"] = lambda *args: delivered.append(args)
        events.put_events(Entries=[{"Source": "demo", "DetailType": "x", "Detail": json.dumps({"a": 1})}])
        assert len(delivered) == 1
        rule_arn, target, payload = delivered[0]
        assert rule_arn.endswith(":rule/r")
        assert target["Id"] == "t"
        assert payload["detail"] == {"a": 1}
        assert payload["time"].endswith("Z")
        assert "ingestion-time" not in payload

        events.disable_rule(Name="r")
        events.put_events(Entries=[{"Source": "demo", "DetailType": "x", "Detail": "{}"}])
        assert len(delivered) == 1, "a disabled rule delivered an event"


# ---------------------------------------------------------------- S3 -> EventBridge
def test_s3_eventbridge_notification() -> None:
    from moto.s3 import notifications
    from moto.s3.models import s3_backends

    with mock_aws():
        s3, events, sqs = client("s3"), client("events"), client("sqs")
        s3.create_bucket(Bucket="input-bucket")
        s3.put_bucket_notification_configuration(
            Bucket="input-bucket", NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
        events.create_event_bus(Name="custom")
        urls = {}
        for bus in ("default", "custom"):
            url = sqs.create_queue(QueueName=f"q-{bus}")["QueueUrl"]
            urls[bus] = url
            events.put_rule(Name=f"r-{bus}", EventBusName=bus, EventPattern=json.dumps({"source": ["aws.s3"]}))
            events.put_targets(
                Rule=f"r-{bus}",
                EventBusName=bus,
                Targets=[{"Id": "q", "Arn": f"arn:aws:sqs:{REGION}:123456789012:q-{bus}"}],
            )

        def drain(bus: str) -> list[dict[str, Any]]:
            messages = sqs.receive_message(QueueUrl=urls[bus], MaxNumberOfMessages=10).get("Messages", [])
            for m in messages:
                sqs.delete_message(QueueUrl=urls[bus], ReceiptHandle=m["ReceiptHandle"])
            return [json.loads(m["Body"]) for m in messages]

        bucket = s3_backends["123456789012"]["aws"].buckets["input-bucket"]
        s3.put_object(Bucket="input-bucket", Key="k", Body=b"x")
        drain("default"), drain("custom")
        key = bucket.keys["k"]
        original(notifications, "_send_event_bridge_message")("123456789012", bucket, "s3:ObjectCreated:Put", key)
        pristine = drain("custom")
        assert pristine, "moto no longer sends S3 events to custom buses"
        assert "eTag" in pristine[0]["detail"]["object"]
        assert pristine[0]["detail"]["reason"] != "PutObject"
        drain("default")

        s3.put_object(Bucket="input-bucket", Key="incoming/a b.csv", Body=b"hello")
        s3.put_object(Bucket="input-bucket", Key="incoming/a b.csv", Body=b"hello again")
        created = drain("default")
        assert not drain("custom"), "S3 events reached a custom bus"
        assert [e["detail-type"] for e in created] == ["Object Created", "Object Created"]
        first, second = created
        assert first["id"] != second["id"]
        assert first["detail"]["object"]["sequencer"] < second["detail"]["object"]["sequencer"]
        assert first["detail"]["object"]["key"] == "incoming/a b.csv"
        assert first["detail"]["object"]["etag"]
        assert first["detail"]["object"]["size"] == 5
        assert "version-id" not in first["detail"]["object"]  # versioning is off
        assert first["detail"]["reason"] == "PutObject"
        assert first["source"] == "aws.s3"


# ---------------------------------------------------------------- Batch jobs run by the local compute
def test_batch_job_start() -> None:
    from moto.batch.models import Job

    assert original(Job, "start") is Job.__mro__[1].start, "moto's Job no longer runs on its own thread"
    handed: list[Any] = []
    moto_adaptations.hooks["batch_job"] = handed.append
    with mock_aws():
        queue, definition = make_batch()
        job_id = client("batch").submit_job(jobName="job-1", jobQueue=queue, jobDefinition=definition)["jobId"]
        assert [job.job_id for job in handed] == [job_id]
        assert handed[0].ident is None, "moto started its own thread for the job"
        assert client("batch").describe_jobs(jobs=[job_id])["jobs"][0]["status"] == "SUBMITTED"


def test_batch_job_description() -> None:
    from moto.batch.models import Job

    moto_adaptations.hooks["batch_job"] = lambda job: None
    with mock_aws():
        queue, definition = make_batch()
        batch = client("batch")
        job_id = batch.submit_job(
            jobName="job-1",
            jobQueue=queue,
            jobDefinition=definition,
            containerOverrides={"environment": [{"name": "A", "value": "1"}]},
        )["jobId"]
        from moto.batch.models import batch_backends

        job = batch_backends["123456789012"][REGION].get_job_by_id(job_id)
        pristine = original(Job, "_get_container_property")
        sizes = [len(pristine(job, "environment", [])) for _ in range(2)]
        assert sizes[1] > sizes[0], "moto no longer grows the overrides on each describe"

        job.container_overrides["environment"] = [{"name": "A", "value": "1"}]
        described = [batch.describe_jobs(jobs=[job_id])["jobs"][0]["container"]["environment"] for _ in range(3)]
        assert described[0] == described[2]
        assert {e["name"] for e in described[0]} == {"A", "FROM_DEFINITION", "AWS_BATCH_JOB_ID"}

        finish(job, 3)
        job.container_reason = "exited"
        container = batch.describe_jobs(jobs=[job_id])["jobs"][0]["container"]
        assert container["exitCode"] == 3
        assert container["reason"] == "exited"
        assert "exitCode" not in original(Job, "_container_details")(job), "moto now reports exitCode itself"


# ---------------------------------------------------------------- Lambda Invoke
def dummy_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return 'ran'\n")
    return buffer.getvalue()


def test_lambda_invoke() -> None:
    with mock_aws():
        role = client("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lam = client("lambda")
        lam.create_function(
            FunctionName="f", Runtime="python3.11", Role=role, Handler="app.handler", Code={"ZipFile": dummy_zip()}
        )
        pristine = lam.invoke(FunctionName="f", Payload=b"{}")["Payload"].read()
        assert pristine != b'"ran"', "moto now runs Lambda code without Docker"

        calls: list[tuple[str, Any, str]] = []

        def run(arn: str, payload: Any, invocation_type: str) -> tuple[bytes, str | None, str]:
            calls.append((arn, payload, invocation_type))
            return b'{"errorType": "ValueError"}', "Unhandled", "log line"

        moto_adaptations.hooks["lambda_invoke"] = run
        response = lam.invoke(FunctionName="f", Payload=json.dumps({"a": 1}).encode(), LogType="Tail")
        assert response["FunctionError"] == "Unhandled"
        assert json.loads(response["Payload"].read()) == {"errorType": "ValueError"}
        assert calls == [(f"arn:aws:lambda:{REGION}:123456789012:function:f", {"a": 1}, "RequestResponse")]
        assert lam.invoke(FunctionName="f", InvocationType="Event", Payload=b"{}")["StatusCode"] == 202
        assert calls[-1][2] == "Event"


# ---------------------------------------------------------------- Step Functions engine performance
ASL = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})


def test_asl_parse_cache() -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException

    pristine = original(AmazonStateLanguageParser, "parse")
    assert pristine(ASL)[1] is not pristine(ASL)[1], "moto now keeps parse trees itself"

    (first, tree), (second, same_tree) = AmazonStateLanguageParser.parse(ASL), AmazonStateLanguageParser.parse(ASL)
    assert tree is same_tree
    assert first is not second  # every execution still gets its own evaluation components
    assert type(first) is type(pristine(ASL)[0])
    with pytest.raises(ASLParserException):
        AmazonStateLanguageParser.parse('{"StartAt": ')


def test_engine_client_cache() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_dynamodb
    from moto.stepfunctions.parser.asl.utils import boto_client

    pristine = original(boto_client, "boto_client_for")
    assert pristine(region=REGION, service="dynamodb") is not pristine(region=REGION, service="dynamodb")
    adapted = state_task_service_dynamodb.boto_client_for
    assert adapted is boto_client.boto_client_for
    assert adapted(region=REGION, service="dynamodb") is adapted(region=REGION, service="dynamodb")
    assert adapted(region=REGION, service="dynamodb") is not adapted(region=REGION, service="batch")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        role = client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        client("dynamodb").create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        )
        asl = {
            "StartAt": "Put",
            "States": {
                "Put": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::dynamodb:putItem",
                    "Parameters": {"TableName": "t", "Item": {"pk": {"S.$": "$$.Execution.Name"}}},
                    "End": True,
                }
            },
        }
        sfn = client("stepfunctions")
        machine = sfn.create_state_machine(name="m", definition=json.dumps(asl), roleArn=role)["stateMachineArn"]
        for name in ("e1", "e2"):
            execution = sfn.start_execution(stateMachineArn=machine, name=name)["executionArn"]
            assert wait_status(sfn, execution)["status"] == "SUCCEEDED"
        assert client("dynamodb").scan(TableName="t")["Count"] == 2


# ---------------------------------------------------------------- moto server dispatch
def test_server_dispatch_cache() -> None:
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    listing = original(backends, "list_of_moto_modules")
    assert not isinstance(listing(), tuple | list), "moto now lists its services once itself"
    assert tuple(listing()) == backends.list_of_moto_modules()

    app = DomainDispatcherApplication(create_backend_app)
    pristine = original(DomainDispatcherApplication, "get_backend_for_host")
    host = f"dynamodb.{REGION}.amazonaws.com"
    assert app.get_backend_for_host(host) == pristine(app, host) == "dynamodb"
    assert app.get_backend_for_host(host) == "dynamodb"  # from the cache now
    assert app.get_backend_for_host(None) is None


# ================================================================ the newer backends (issue 4)
def run_asl(states: dict[str, Any], first: str, payload: dict[str, Any] | None = None, wait: bool = True) -> Any:
    sfn, iam = client("stepfunctions"), client("iam")
    try:
        role = iam.create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    except ClientError:
        role = iam.get_role(RoleName="sfn")["Role"]["Arn"]
    definition = json.dumps({"StartAt": first, "States": states})
    machine = sfn.create_state_machine(name=f"m{time.monotonic_ns()}", definition=definition, roleArn=role)
    arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name="e", input=json.dumps(payload or {}))[
        "executionArn"
    ]
    return wait_execution(arn) if wait else arn


def wait_execution(arn: str, timeout: float = 20) -> dict[str, Any]:
    sfn = client("stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            failures = [
                e["taskFailedEventDetails"]
                for e in sfn.get_execution_history(executionArn=arn)["events"]
                if "taskFailedEventDetails" in e
            ]
            return {**described, "failures": failures}
        time.sleep(0.05)
    raise AssertionError("execution still running")


def task(resource: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"T": {"Type": "Task", "Resource": resource, "Parameters": parameters, "End": True}}


SFN = {"stepfunctions": {"execute_state_machine": True}}


# ---------------------------------------------------------------- the Step Functions engine
def test_keyword_path_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    states = {
        "P": {
            "Type": "Pass",
            "Parameters": {
                "RoleArn.$": "$.role",
                "Formatted.$": "States.Format('{}-1', $.role)",
                "Execution.$": "$$.Execution.Name",
            },
            "End": True,
        }
    }
    with mock_aws(config=SFN):
        monkeypatch.setattr(
            Preprocessor, "visitPayload_binding_value", original(Preprocessor, "visitPayload_binding_value")
        )
        pristine = json.loads(run_asl(states, "P", {"role": "r"})["output"])
        assert pristine["RoleArn.$"] == "$.role", "moto now reads RoleArn.$ as a path"
        monkeypatch.undo()
        adapted = json.loads(run_asl(states, "P", {"role": "r"})["output"])
        assert adapted == {"RoleArn": "r", "Formatted": "r-1", "Execution": "e"}


def make_glue_job(max_runs: int = 1) -> None:
    client("glue").create_job(
        Name="g",
        Role="arn:aws:iam::123456789012:role/glue",
        Command={"Name": "glueetl", "ScriptLocation": "s3://b/x.py"},
        ExecutionProperty={"MaxConcurrentRuns": max_runs},
    )


GLUE_SYNC = task("arn:aws:states:::glue:startJobRun.sync", {"JobName": "g"})


def test_sync_without_callback(monkeypatch: pytest.MonkeyPatch, adapted: dict[str, Any]) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )

    with mock_aws(config=SFN):
        make_glue_job(max_runs=5)
        monkeypatch.setattr(
            StateTaskServiceCallback,
            "_eval_integration_pattern",
            original(StateTaskServiceCallback, "_eval_integration_pattern"),
        )
        pristine = run_asl(GLUE_SYNC, "T")
        assert pristine["status"] == "FAILED"
        assert "interrupt_all" in pristine["failures"][0]["cause"], "moto's .sync without a callback changed"
        monkeypatch.undo()
        assert run_asl(GLUE_SYNC, "T")["status"] == "SUCCEEDED"

        # A stopped execution stops the job it was waiting for (here: a held Glue run).
        held: list[Any] = []
        adapted["glue_job_run"] = lambda job, run: held.append(run)
        arn = run_asl(GLUE_SYNC, "T", wait=False)
        wait_until(lambda: held)
        client("stepfunctions").stop_execution(executionArn=arn)
        wait_until(lambda: held[0].status == "STOPPING")


PROCESSING_REQUEST = {
    "ProcessingJobName": "p-1",
    "AppSpecification": {"ImageUri": "123.dkr.ecr.us-east-1.amazonaws.com/x:1"},
    "Environment": {"A": "1"},
    "RoleArn": "arn:aws:iam::123456789012:role/sm",
    "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}},
    "StoppingCondition": {"MaxRuntimeInSeconds": 60},
}
# The same request as an ASL task's parameters, its role taken from the input.
PROCESSING = {**{k: v for k, v in PROCESSING_REQUEST.items() if k != "RoleArn"}, "RoleArn.$": "$.role"}
PROCESSING_SYNC = task("arn:aws:states:::sagemaker:createProcessingJob.sync", PROCESSING)
ROLE = {"role": "arn:aws:iam::123456789012:role/sm"}


def test_sagemaker_processing_sync(monkeypatch: pytest.MonkeyPatch, adapted: dict[str, Any]) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory

    with mock_aws(config=SFN):
        monkeypatch.setattr(
            state_task_factory, "state_task_service_for", original(state_task_factory, "state_task_service_for")
        )
        pristine = run_asl(PROCESSING_SYNC, "T", ROLE)
        assert pristine["status"] == "FAILED"
        assert "Unsupported sync callback procedure" in json.dumps(pristine["failures"] or pristine.get("cause", ""))
        monkeypatch.undo()

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

        states = task("arn:aws:states:::sagemaker:createProcessingJob.sync", {**PROCESSING, "ProcessingJobName": "p-2"})
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
        states = task("arn:aws:states:::sagemaker:createProcessingJob.sync", {**PROCESSING, "ProcessingJobName": "p-3"})
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


def make_service_queue(endpoint: str | None = None) -> str:
    return create_training_queue(client("batch", endpoint))


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
            "ServiceRequestPayload": "{}",
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


# ---------------------------------------------------------------- Batch service jobs
def service_job_calls(endpoint: str | None, adapted: dict[str, Any]) -> None:
    batch = client("batch", endpoint)
    queue = make_service_queue(endpoint)
    (described,) = batch.describe_job_queues(jobQueues=[queue])["jobQueues"]
    assert described["jobQueueType"] == "SAGEMAKER_TRAINING"
    assert described["serviceEnvironmentOrder"][0]["serviceEnvironment"].endswith(":service-environment/training")
    assert batch.describe_service_environments()["serviceEnvironments"][0]["capacityLimits"] == [
        {"maxCapacity": 1, "capacityUnit": "NUM_INSTANCES"}
    ]
    request = {
        "jobName": "train-1",
        "jobQueue": queue,
        "serviceJobType": "SAGEMAKER_TRAINING",
        "serviceRequestPayload": json.dumps({"x": "y" * (10 * 1024 - 9)}),
        "clientToken": "run-1",
        "tags": {"jobline:attempt": "1"},
        "timeoutConfig": {"attemptDurationSeconds": 600},
    }
    assert len(request["serviceRequestPayload"]) == 10 * 1024  # exactly the quota: accepted
    first = batch.submit_service_job(**request)
    again = batch.submit_service_job(**request)
    assert first["jobId"] == again["jobId"], "a repeated clientToken made a second job"
    assert first["jobArn"].endswith(f":service-job/{first['jobId']}")

    def refused(message: str, **changes: Any) -> None:
        with pytest.raises(ClientError, match=message) as caught:
            batch.submit_service_job(**{**request, **changes})
        assert caught.value.response["Error"]["Code"] == "ClientException"

    refused("already used .* with other parameters", jobName="train-2")
    refused("10241 bytes; the maximum is 10240", clientToken="run-2", serviceRequestPayload="{" + " " * 10239 + "}")
    refused("does not exist", clientToken="run-3", jobQueue="nope")
    refused("must be a JSON object", clientToken="run-4", serviceRequestPayload="[]")

    job = batch.describe_service_job(jobId=first["jobId"])
    assert (job["status"], job["jobName"], job["jobQueue"]) == ("SUBMITTED", "train-1", queue)
    assert (job["tags"], job["timeoutConfig"]) == (request["tags"], {"attemptDurationSeconds": 600})
    assert job["retryStrategy"] == {"attempts": 1}
    (listed,) = batch.list_service_jobs(jobQueue=queue)["jobSummaryList"]
    assert listed["jobId"] == first["jobId"]
    batch.terminate_service_job(jobId=first["jobId"], reason="Stopped by user")
    ended = batch.describe_service_job(jobId=first["jobId"])
    assert (ended["status"], ended["statusReason"], ended["isTerminated"]) == ("FAILED", "Stopped by user", True)
    assert batch.list_service_jobs(jobQueue=queue, jobStatus="RUNNING")["jobSummaryList"] == []
    with pytest.raises(ClientError, match="does not exist"):
        batch.describe_service_job(jobId="nope")


def test_batch_service_jobs(adapted: dict[str, Any]) -> None:
    from moto.batch.responses import BatchResponse
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    for name in ("submitservicejob", "describeservicejob", "terminateservicejob", "listservicejobs"):
        assert original(BatchResponse, name) is None, f"moto now implements {name}"
    with mock_aws():
        service_job_calls(None, adapted)
        # Through the HTTP routes, as the local stack serves them (server mode).
        server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            from moto.core import DEFAULT_ACCOUNT_ID

            moto_adaptations._batch_backend(DEFAULT_ACCOUNT_ID, REGION).reset()
            service_job_calls(f"http://127.0.0.1:{server.server_port}", adapted)
        finally:
            server.shutdown()

    handed: list[Any] = []
    adapted["service_job"] = handed.append
    with mock_aws():
        queue = make_service_queue()
        batch = client("batch")
        job_id = batch.submit_service_job(
            jobName="j", jobQueue=queue, serviceJobType="SAGEMAKER_TRAINING", serviceRequestPayload="{}"
        )["jobId"]
        assert [j.job_id for j in handed] == [job_id]
        batch.terminate_service_job(jobId=job_id, reason="stop it")
        assert handed[0].terminate_reason == "stop it"  # the local stand-in ends it
        assert batch.describe_service_job(jobId=job_id)["status"] == "SUBMITTED"
        env = client("batch").create_compute_environment(
            computeEnvironmentName="local-ce",
            type="UNMANAGED",
            serviceRole=client("iam").create_role(RoleName="b", AssumeRolePolicyDocument="{}")["Role"]["Arn"],
        )["computeEnvironmentArn"]
        ecs_queue = batch.create_job_queue(
            jobQueueName="ecs",
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env}],
        )["jobQueueArn"]
        with pytest.raises(ClientError, match="does not match job queue ecs"):
            batch.submit_service_job(
                jobName="j", jobQueue=ecs_queue, serviceJobType="SAGEMAKER_TRAINING", serviceRequestPayload="{}"
            )
        definition = batch.register_job_definition(
            jobDefinitionName="d", type="container", containerProperties={"image": "x", "vcpus": 1, "memory": 512}
        )["jobDefinitionArn"]
        with pytest.raises(ClientError, match="use SubmitServiceJob"):
            batch.submit_job(jobName="j", jobQueue=queue, jobDefinition=definition)


# ---------------------------------------------------------------- SageMaker processing jobs


def test_sagemaker_processing_jobs(monkeypatch: pytest.MonkeyPatch, adapted: dict[str, Any]) -> None:
    from moto.sagemaker.responses import SageMakerResponse

    with mock_aws():
        sagemaker = client("sagemaker")
        monkeypatch.setattr(
            SageMakerResponse, "create_processing_job", original(SageMakerResponse, "create_processing_job")
        )
        sagemaker.create_processing_job(**PROCESSING_REQUEST)
        sagemaker.create_processing_job(**PROCESSING_REQUEST)  # moto takes a name twice
        pristine = sagemaker.describe_processing_job(ProcessingJobName="p-1")
        assert "Environment" not in pristine, "moto now keeps a processing job's Environment"
        monkeypatch.undo()

        handed: list[Any] = []
        adapted["processing_job"] = handed.append
        request = {**PROCESSING_REQUEST, "ProcessingJobName": "p-2"}
        sagemaker.create_processing_job(**request)
        with pytest.raises(ClientError, match="must be unique") as caught:
            sagemaker.create_processing_job(**request)
        assert caught.value.response["Error"]["Code"] == "ResourceInUse"
        job = sagemaker.describe_processing_job(ProcessingJobName="p-2")
        assert (job["ProcessingJobStatus"], job["Environment"]) == ("InProgress", {"A": "1"})
        assert job["ProcessingResources"] == PROCESSING_REQUEST["ProcessingResources"]
        assert "ProcessingEndTime" not in job
        assert "Tags" not in job  # not a member of DescribeProcessingJob's answer
        assert handed[0].processing_job_name == "p-2"
        sagemaker.stop_processing_job(ProcessingJobName="p-2")
        assert sagemaker.describe_processing_job(ProcessingJobName="p-2")["ProcessingJobStatus"] == "Stopping"
        with pytest.raises(ClientError, match="is in status Stopping"):
            sagemaker.stop_processing_job(ProcessingJobName="p-2")


# ---------------------------------------------------------------- Glue job runs
def test_glue_job_runs(adapted: dict[str, Any]) -> None:
    from moto.glue.models import FakeJob, GlueBackend
    from moto.glue.responses import GlueResponse

    assert original(GlueBackend, "batch_stop_job_run") is None, "moto now implements BatchStopJobRun"
    assert original(GlueResponse, "batch_stop_job_run") is None
    with mock_aws():
        make_glue_job(max_runs=1)
        glue = client("glue")
        from moto.glue.models import glue_backends

        job = glue_backends[ACCOUNT][REGION].get_job("g")
        first = glue.start_job_run(JobName="g")["JobRunId"]
        job.job_runs[0].status = "STOPPING"
        second = original(FakeJob, "start_job_run")(job, None, None, None, None, None, None, None, None, None)
        assert second, "moto now counts a STOPPING run against MaxConcurrentRuns"
        job.job_runs.pop()

        with pytest.raises(ClientError) as caught:
            glue.start_job_run(JobName="g")
        assert caught.value.response["Error"]["Code"] == "ConcurrentRunsExceededException"
        job.job_runs[0].status = "STOPPED"

        handed: list[Any] = []
        adapted["glue_job_run"] = lambda glue_job, run: handed.append(run)
        run_id = glue.start_job_run(JobName="g", ExecutionClass="FLEX", Arguments={"--a": "1"})["JobRunId"]
        for _ in range(3):
            run = glue.get_job_run(JobName="g", RunId=run_id)["JobRun"]
        assert run["JobRunState"] == "STARTING", "a run held by the local stack moved by itself"
        assert (run["ExecutionClass"], run["Arguments"]) == ("FLEX", {"--a": "1"})
        assert "CompletedOn" not in run
        result = glue.batch_stop_job_run(JobName="g", JobRunIds=[run_id, first, "jr_nope"])
        assert result["SuccessfulSubmissions"] == [{"JobName": "g", "JobRunId": run_id}]
        assert [e["ErrorDetail"]["ErrorCode"] for e in result["Errors"]] == [
            "InvalidInputException",
            "EntityNotFoundException",
        ]
        assert handed[0].status == "STOPPING"  # the local stand-in ends it
        handed[0].status, handed[0].error_message = "FAILED", "ZeroDivisionError"
        handed[0].completed_on = handed[0].started_on
        run = glue.get_job_run(JobName="g", RunId=run_id)["JobRun"]
        assert (run["JobRunState"], run["ErrorMessage"]) == ("FAILED", "ZeroDivisionError")
        assert "CompletedOn" in run
