"""One test per adaptation in jobline_local.moto_adaptations. Each checks that the pinned moto
still behaves as the adaptation assumes (through moto's original code, kept in `originals`),
and that the adaptation closes the gap. A moto upgrade that changes either fails here."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import moto
import pytest
from moto import mock_aws

from jobline_local import moto_adaptations

REGION = "us-east-1"


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


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


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
