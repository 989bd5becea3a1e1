"""Run State Change notifications from the run table's stream (moto): one event per run that becomes
final, whoever wrote it, and an SNS message for FAILED and TIMEOUT runs; the template's stream
mapping passes exactly those records; an event PutEvents refuses is redriven, never lost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer
from botocore.awsrequest import AWSResponse

from jobline import notifications
from jobline import settings as settings_module
from jobline.backends import Observation
from jobline.catalog import parse_catalog
from jobline.operations import Operations
from jobline.settings import Settings
from jobline.state_changes import apply_observation
from jobline_local.adaptations.delivery import pattern_matches
from tests.aws_resources import job_spec
from tests.cfn import resource, template
from tests.unit.conftest import LambdaContext, load_handler, put_row

pytestmark = pytest.mark.usefixtures("env")


@pytest.fixture
def stream_stack(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The run table with the template's stream, the job bus with a rule to a queue, the failure
    topic with a queue subscribed, and the notify function's environment."""
    session = env["session"]
    ddb, sqs, events, sns = (session.client(n) for n in ("dynamodb", "sqs", "events", "sns"))
    props = resource("RunTable")["Properties"]
    view = props["StreamSpecification"]["StreamViewType"]
    stream_arn = ddb.create_table(
        TableName="runs-streamed",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view},
    )["TableDescription"]["LatestStreamArn"]
    events.create_event_bus(Name="jobs")
    events.put_rule(Name="all", EventBusName="jobs", EventPattern=json.dumps({"source": ["jobline"]}))
    seen = sqs.create_queue(QueueName="seen")["QueueUrl"]
    seen_arn = sqs.get_queue_attributes(QueueUrl=seen, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_targets(Rule="all", EventBusName="jobs", Targets=[{"Id": "seen", "Arn": seen_arn}])
    topic = sns.create_topic(Name="failures")["TopicArn"]
    alerts = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    alerts_arn = sqs.get_queue_attributes(QueueUrl=alerts, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=alerts_arn)
    redrive = sqs.create_queue(QueueName="notification-redrive")["QueueUrl"]
    variables = {
        "RUN_TABLE_NAME": "runs-streamed",
        "JOB_BUS_NAME": "jobs",
        "FAILURE_TOPIC_ARN": topic,
        "NOTIFICATION_REDRIVE_QUEUE_URL": redrive,
    }
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    settings_module.get_settings.cache_clear()
    notifications.get_notifier.cache_clear()
    ops = Operations.build(Settings(), parse_catalog({"jobs": [job_spec("word-count")]}), session)
    yield {"ops": ops, "stream": stream_arn, "seen": seen, "alerts": alerts, "redrive": redrive, "session": session}
    notifications.get_notifier.cache_clear()


def stream_records(stack: dict[str, Any]) -> list[dict[str, Any]]:
    """Every record of the stream, as Lambda hands them over (eventSourceARN, epoch times)."""
    streams = stack["session"].client("dynamodbstreams")
    records = []
    for shard in streams.describe_stream(StreamArn=stack["stream"])["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stack["stream"], ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for record in streams.get_records(ShardIterator=iterator)["Records"]:
            record["dynamodb"]["ApproximateCreationDateTime"] = record["dynamodb"][
                "ApproximateCreationDateTime"
            ].timestamp()
            records.append({**record, "eventSourceARN": stack["stream"]})
    return records


def images(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    plain = TypeDeserializer().deserialize
    old, new = (record["dynamodb"].get(side, {}) for side in ("OldImage", "NewImage"))
    return {k: plain(v) for k, v in old.items()}, {k: plain(v) for k, v in new.items()}


def drain(stack: dict[str, Any], queue: str) -> list[dict[str, Any]]:
    sqs = stack["session"].client("sqs")
    bodies = []
    while messages := sqs.receive_message(QueueUrl=stack[queue], MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=stack[queue], ReceiptHandle=message["ReceiptHandle"])
    return bodies


def make_runs(ops: Operations) -> dict[str, str]:
    """Runs ended by every writer: an operator's stop, the state machine's RecordOutcome (UpdateItem),
    a state change event; then writes to final rows (which must not notify again)."""
    stopped = ops.start_run("word-count", {}, "stopped")["run_id"]
    failed = ops.start_run("word-count", {}, "failed")["run_id"]
    succeeded = ops.start_run("word-count", {}, "succeeded")["run_id"]
    live = ops.start_run("word-count", {}, "live")["run_id"]
    put_row(ops._table, stopped, status="RUNNING", status_rank=20)
    ops.stop_runs([stopped])
    ops._table._client.update_item(
        TableName="runs-streamed",
        Key={"pk": {"S": f"RUN#{failed}"}},
        UpdateExpression="SET #s = :s, reason = :r, status_rank = :t, ended_at = :now",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":s": {"S": "FAILED"},
            ":r": {"S": "NonZeroExitCode"},
            ":t": {"N": "30"},
            ":now": {"S": "2030-01-01T00:00:00.000Z"},
        },
    )
    observed = {"attempt": 1, "backend_status": "SUCCEEDED", "status": "SUCCEEDED", "reason": "Completed", "rank": 5}
    observed["event_time"] = "2030-01-01T00:00:00.000Z"
    apply_observation(Observation(succeeded, 1, observed), ops._table, None)
    ops.stop_runs([failed])  # already FAILED: no write
    put_row(ops._table, stopped, note="a later write to a final row")
    return {"stopped": stopped, "failed": failed, "succeeded": succeeded, "live": live}


def test_each_run_that_becomes_final_is_announced_once(stream_stack: dict[str, Any]) -> None:
    runs = make_runs(stream_stack["ops"])
    records = stream_records(stream_stack)

    result = load_handler("notify").handler({"Records": records}, LambdaContext())

    assert result == {"batchItemFailures": []}
    events = drain(stream_stack, "seen")
    assert sorted(e["detail"]["run_id"] for e in events) == sorted([runs["stopped"], runs["failed"], runs["succeeded"]])
    assert {(e["source"], e["detail-type"]) for e in events} == {("jobline", "Run State Change")}
    by_run = {e["detail"]["run_id"]: e["detail"] for e in events}
    stopped = by_run[runs["stopped"]]
    assert (stopped["job"], stopped["status"], stopped["reason"]) == ("word-count", "STOPPED", "Stopped by user")
    assert stopped["trigger_source"] == "manual"
    assert stopped["ended_at"] >= stopped["created_at"]
    assert {"run_id", "job", "status", "reason", "attempt", "created_at", "ended_at", "trigger_source"} <= set(stopped)
    assert (by_run[runs["failed"]]["status"], by_run[runs["failed"]]["reason"]) == ("FAILED", "NonZeroExitCode")
    assert (by_run[runs["succeeded"]]["status"], by_run[runs["succeeded"]]["attempt"]) == ("SUCCEEDED", 1)

    (alert,) = drain(stream_stack, "alerts")
    assert alert["Subject"] == "jobline: word-count run FAILED"
    assert json.loads(alert["Message"])["run_id"] == runs["failed"]


def test_the_stream_mapping_passes_exactly_the_transitions_to_final(stream_stack: dict[str, Any]) -> None:
    runs = make_runs(stream_stack["ops"])
    records = stream_records(stream_stack)
    mapping = resource("NotifyFunctionRunTableStream")["Properties"]
    (pattern,) = (json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"])

    passed = [r for r in records if pattern_matches(pattern, r)]

    assert len(records) > len(passed)
    assert passed == [r for r in records if notifications.is_final_transition(*images(r))]
    assert sorted(r["dynamodb"]["Keys"]["pk"]["S"] for r in passed) == sorted(
        f"RUN#{runs[name]}" for name in ("stopped", "failed", "succeeded")
    )


@contextmanager
def refusing_put_events(how: str) -> Iterator[None]:
    """The notifier's PutEvents refuses every event: with an error (after botocore's retries), or
    with the entry failed in FailedEntryCount."""
    events = notifications.get_notifier().events
    if how == "error":
        response, parsed = AWSResponse("https://events", 503, {}, None), {"Error": {"Code": "ServiceUnavailable"}}
    else:
        response = AWSResponse("https://events", 200, {}, None)
        parsed = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}]}

    def refuse(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return response, parsed

    events.meta.events.register("before-call.events.PutEvents", refuse)
    try:
        yield
    finally:
        events.meta.events.unregister("before-call.events.PutEvents", refuse)


def redrive_batch(stack: dict[str, Any]) -> dict[str, Any]:
    """What the redrive queue's event source hands the function: up to 10 messages, as Lambda shapes them."""
    sqs = stack["session"].client("sqs")
    messages = sqs.receive_message(QueueUrl=stack["redrive"], MaxNumberOfMessages=10).get("Messages", [])
    arn = "arn:aws:sqs:us-east-1:123456789012:notification-redrive"
    records = [
        {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"], "eventSource": "aws:sqs"}
        | {"eventSourceARN": arn, "awsRegion": "us-east-1", "attributes": {}, "messageAttributes": {}}
        for m in messages
    ]
    return {"Records": records}


@pytest.mark.parametrize("how", ["error", "failed entry"])
def test_refused_notifications_are_redriven_none_lost_and_copies_share_their_id(
    stream_stack: dict[str, Any], how: str
) -> None:
    runs = make_runs(stream_stack["ops"])
    records = stream_records(stream_stack)
    handler = load_handler("notify").handler
    with refusing_put_events(how):
        # Every event refused: each is queued for redrive; the stream batch succeeds. The stream
        # then delivers the batch again (its response was lost): the copies are queued too.
        assert handler({"Records": records}, LambdaContext()) == {"batchItemFailures": []}
        assert handler({"Records": records}, LambdaContext()) == {"batchItemFailures": []}
        assert drain(stream_stack, "seen") == []
        still_refused = redrive_batch(stream_stack)
        failed = handler(still_refused, LambdaContext())["batchItemFailures"]
        assert len(failed) == len(still_refused["Records"]) == 6  # SQS keeps them for another try

    sqs = stream_stack["session"].client("sqs")
    for record in still_refused["Records"]:  # their visibility timeout passes
        sqs.change_message_visibility(
            QueueUrl=stream_stack["redrive"], ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
        )
    redriven = redrive_batch(stream_stack)
    assert handler(redriven, LambdaContext()) == {"batchItemFailures": []}

    events = drain(stream_stack, "seen")
    final = {runs["stopped"], runs["failed"], runs["succeeded"]}
    assert sorted(e["detail"]["run_id"] for e in events) == sorted([*final, *final])  # none lost
    ids = {e["detail"]["run_id"]: set() for e in events}
    for event in events:
        ids[event["detail"]["run_id"]].add(event["detail"]["notification_id"])
    assert all(len(copies) == 1 for copies in ids.values())  # every copy of one carries one id
    assert len({next(iter(copies)) for copies in ids.values()}) == 3


def test_when_the_redrive_queue_refuses_too_the_stream_retries_from_that_record(stream_stack: dict[str, Any]) -> None:
    make_runs(stream_stack["ops"])
    records = stream_records(stream_stack)
    transitions = [r for r in records if notifications.is_final_transition(*images(r))]
    sqs = notifications.get_notifier().sqs
    response = AWSResponse("https://sqs", 503, {}, None)
    sqs.meta.events.register(
        "before-call.sqs.SendMessage", lambda **_: (response, {"Error": {"Code": "ServiceUnavailable"}})
    )
    with refusing_put_events("error"):
        result = load_handler("notify").handler({"Records": records}, LambdaContext())
    assert result == {"batchItemFailures": [{"itemIdentifier": transitions[0]["dynamodb"]["SequenceNumber"]}]}


def test_the_template_streams_the_run_table_to_the_notify_function() -> None:
    assert resource("RunTable")["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    mapping = resource("NotifyFunctionRunTableStream")["Properties"]
    assert mapping["FunctionName"] == {"Ref": "NotifyFunction"}
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["RunTable", "StreamArn"]}
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["EventDeadLetterQueue", "Arn"]}
    env = resource("NotifyFunction")["Properties"]["Environment"]["Variables"]
    assert env["JOB_BUS_NAME"] == {"Ref": "JobBus"}
    assert env["FAILURE_TOPIC_ARN"] == {"Fn::If": ["NotifyFailures", {"Ref": "RunFailureTopic"}, ""]}
    assert set(env) <= {name.upper() for name in Settings.model_fields}


def test_the_notify_function_may_read_the_stream_put_on_the_bus_and_count_fanout_ends_only() -> None:
    allowed: dict[str, str] = {}
    for policy in resource("NotifyFunction")["Properties"]["Policies"]:
        for statement in policy["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            allowed.update(dict.fromkeys(actions, str(statement["Resource"])))
    stream = str({"Fn::GetAtt": ["RunTable", "StreamArn"]})
    allowed.pop("sqs:SendMessage")  # two statements: see below
    assert allowed == {
        "dynamodb:DescribeStream": stream,
        "dynamodb:GetRecords": stream,
        "dynamodb:GetShardIterator": stream,
        "dynamodb:ListStreams": stream,
        "events:PutEvents": str({"Fn::GetAtt": ["JobBus", "Arn"]}),
        "dynamodb:PutItem": str({"Fn::GetAtt": ["RunTable", "Arn"]}),  # FANOUT# ended counts, once per run
        "dynamodb:UpdateItem": str({"Fn::GetAtt": ["RunTable", "Arn"]}),
        "dynamodb:DeleteItem": str({"Fn::GetAtt": ["RunTable", "Arn"]}),
    }
    sends = [
        statement["Resource"]
        for policy in resource("NotifyFunction")["Properties"]["Policies"]
        for statement in policy["Statement"]
        if statement["Action"] == "sqs:SendMessage"
    ]
    assert sends == [
        {"Fn::GetAtt": ["EventDeadLetterQueue", "Arn"]},  # the stream mapping's on-failure destination
        {"Fn::GetAtt": ["NotificationRedriveQueue", "Arn"]},
    ]
    (statement,) = resource("NotifyFailuresPolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert (statement["Action"], statement["Resource"]) == ("sns:Publish", {"Ref": "RunFailureTopic"})


def test_the_failure_topic_is_optional_encrypted_and_tls_only() -> None:
    assert template()["Conditions"]["NotifyFailures"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "FailureNotificationEmail"}, ""]}]
    }
    assert template()["Parameters"]["FailureNotificationEmail"]["Default"] == ""
    for logical_id in ("RunFailureTopic", "RunFailureTopicPolicy", "NotifyFailuresPolicy"):
        assert resource(logical_id)["Condition"] == "NotifyFailures"
    topic = resource("RunFailureTopic")["Properties"]
    assert topic["KmsMasterKeyId"] == "alias/aws/sns"
    assert topic["Subscription"] == [{"Protocol": "email", "Endpoint": {"Ref": "FailureNotificationEmail"}}]
    (deny,) = resource("RunFailureTopicPolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})
