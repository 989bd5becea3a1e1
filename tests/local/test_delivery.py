"""Adaptations of event delivery (adaptations.delivery), each against moto's original."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from moto import mock_aws

from jobline_local.adaptations import hooks
from tests.aws_resources import REGION
from tests.local.moto_support import client, original


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

        hooks["lambda_target"] = lambda *args: delivered.append(args)
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
