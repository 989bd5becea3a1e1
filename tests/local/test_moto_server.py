"""Adaptations of moto's server (adaptations.moto_server), against moto's original."""

from __future__ import annotations

from typing import Any

import pytest
from moto import mock_aws

from jobline_local.adaptations import install
from tests.aws_resources import REGION
from tests.local.moto_support import client, original


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


def test_serializer_key_picks_answer_as_moto_and_work_out_each_combination_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A speed change only: each response below is compared with moto's own picker's, and a
    repeated GetRecords works out no keys again (moto's picker works them out for every value)."""
    from moto.core.serialize import ResponseSerializer, XFormedAttributePicker

    install()
    worked_out = []
    possible_keys = XFormedAttributePicker.get_possible_keys

    def counted(self: Any, context: Any) -> Any:
        worked_out.append(context.key)
        return possible_keys(self, context)

    monkeypatch.setattr(XFormedAttributePicker, "get_possible_keys", counted)
    with mock_aws():
        responses = exercise_serializers()
        shard_records = responses["records"]
        before = len(worked_out)
        assert exercise_serializers()["records"] == shard_records
        assert worked_out[before:] == [], "a repeated response worked out keys again"
        monkeypatch.setattr(ResponseSerializer, "get_value", original(ResponseSerializer, "get_value"))
        assert exercise_serializers() == responses
    assert [record["eventName"] for record in shard_records] == ["INSERT", "MODIFY", "INSERT", "REMOVE"]


def exercise_serializers() -> dict[str, Any]:
    """Answers of JSON-protocol services as their clients parse them (no request ids, no dates
    that change between calls): a stream's records, items of every attribute type, a table's
    description, an SQS receive."""
    dynamodb, streams, sqs = client("dynamodb"), client("dynamodbstreams"), client("sqs")
    if "t" not in dynamodb.list_tables()["TableNames"]:
        dynamodb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        item = {
            "pk": {"S": "a"},
            "n": {"N": "1.50"},
            "b": {"B": b"\x00\xff"},
            "flag": {"BOOL": False},
            "none": {"NULL": True},
            "tags": {"SS": ["x", "y"]},
            "nums": {"NS": ["1", "2"]},
            "blobs": {"BS": [b"z"]},
            "nested": {"M": {"list": {"L": [{"S": "q"}, {"M": {"deep": {"N": "7"}}}]}, "dotted.key": {"S": "v"}}},
        }
        dynamodb.put_item(TableName="t", Item=item)
        dynamodb.update_item(
            TableName="t",
            Key={"pk": {"S": "a"}},
            UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "RUNNING"}},
        )
        dynamodb.put_item(TableName="t", Item={"pk": {"S": "b"}})
        dynamodb.delete_item(TableName="t", Key={"pk": {"S": "b"}})
        queue = sqs.create_queue(QueueName="q")["QueueUrl"]
        attributes = {"k": {"DataType": "String", "StringValue": "v"}}
        sqs.send_message(QueueUrl=queue, MessageBody="body", MessageAttributes=attributes)
    table = dynamodb.describe_table(TableName="t")["Table"]
    stream = streams.describe_stream(StreamArn=table["LatestStreamArn"])["StreamDescription"]
    iterator = streams.get_shard_iterator(
        StreamArn=stream["StreamArn"], ShardId=stream["Shards"][0]["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    queue = sqs.get_queue_url(QueueName="q")["QueueUrl"]
    received = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"], VisibilityTimeout=0)["Messages"]
    for record in records:
        record["dynamodb"].pop("ApproximateCreationDateTime", None)
    return {
        "records": records,
        "items": dynamodb.scan(TableName="t")["Items"],
        "table": {k: v for k, v in table.items() if k not in ("CreationDateTime",)},
        "stream": {k: v for k, v in stream.items() if k != "CreationRequestDateTime"},
        "received": [{k: v for k, v in m.items() if k != "ReceiptHandle"} for m in received],
    }


class Table:
    """A model object as moto's backends hand some to the serializer: snake_case attributes, one
    under the shape's own casing, one without the class's prefix (`Table.arn` for TableArn)."""

    def __init__(self, name: str) -> None:
        self.table_name = name
        self.TableStatus = "ACTIVE"
        self.item_count = 3
        self.arn = f"arn:aws:dynamodb:us-east-1:123456789012:table/{name}"
        self.key_schema = [{"AttributeName": "pk", "KeyType": "HASH"}]


def test_serializer_key_picks_read_model_objects_as_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.core.serialize import JSONSerializer, ResponseSerializer, XFormedAttributePicker
    from moto.core.utils import get_service_model

    install()
    operation = get_service_model("dynamodb").operation_model("DescribeTable")

    def body(name: str) -> str:
        return JSONSerializer(operation, value_picker=XFormedAttributePicker()).serialize({"Table": Table(name)})[
            "body"
        ]

    adapted = [body("a"), body("b")]
    monkeypatch.setattr(ResponseSerializer, "get_value", original(ResponseSerializer, "get_value"))
    assert adapted == [body("a"), body("b")]
    assert '"TableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/b"' in adapted[1]
