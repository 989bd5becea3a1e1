"""Adaptations of event delivery (adaptations.delivery), each against moto's original."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from moto import mock_aws

from jobline.event_patterns import OPERATORS, TOP_LEVEL_FIELDS, check
from jobline_local.adaptations import hooks
from jobline_local.adaptations.delivery import lambda_target_payload, pattern_matches
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


def test_rule_sqs_targets_get_the_transformed_input() -> None:
    """The intake queues' rules: `{"job", "trigger", "event": <aws.events.event.json>}` arrives as
    the message body, the whole event inserted as AWS writes it (moto's own transformer inserts its
    internal event: `time` in epoch seconds, its `ingestion-time` field)."""
    from moto.events.models import Rule, events_backends

    with mock_aws():
        events, sqs = client("events"), client("sqs")
        url = sqs.create_queue(QueueName="intake")["QueueUrl"]
        events.put_rule(Name="r", EventPattern=json.dumps({"source": ["demo"]}))
        template = '{"job": "j", "trigger": 0, "event": <aws.events.event.json>}'
        target = {
            "Id": "q",
            "Arn": f"arn:aws:sqs:{REGION}:123456789012:intake",
            "InputTransformer": {"InputTemplate": template},
        }
        events.put_targets(Rule="r", Targets=[target])
        rule = events_backends["123456789012"][REGION].event_buses["default"].rules["r"]
        event = {"source": "demo", "detail-type": "x", "detail": {}, "time": time.time(), "id": "1"}
        original(Rule, "send_to_targets")(rule, {**event, "ingestion-time": 0})
        (unadapted,) = sqs.receive_message(QueueUrl=url)["Messages"]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=unadapted["ReceiptHandle"])
        moto_event = json.loads(unadapted["Body"])["event"]
        assert isinstance(moto_event["time"], float)
        assert "ingestion-time" in moto_event

        events.put_events(Entries=[{"Source": "demo", "DetailType": "x", "Detail": json.dumps({"a": 1})}])
        (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
        body = json.loads(message["Body"])
        assert (body["job"], body["trigger"]) == ("j", 0)
        assert body["event"]["detail"] == {"a": 1}
        assert body["event"]["time"].endswith("Z")
        assert "ingestion-time" not in body["event"]


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


# ---------------------------------------------------------------- rule matching
# EventBridge's documented pattern examples (user guide: "Comparison operators for use in event
# patterns" eb-create-pattern-operators.html, "Content filtering" eb-event-patterns-content-based-
# filtering.html, "Arrays in event patterns", "Matching null values and empty strings"), as
# (pattern, event, EventBridge's answer). The local stack matches rules with moto's matcher;
# each row is asserted against it, so a moto that matches otherwise fails here.
EC2 = {
    "version": "0",
    "id": "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "123456789012",
    "time": "2015-11-11T21:29:54Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
    "detail": {"instance-id": "i-abcd1111", "state": "pending"},
}


def ec2(**detail: Any) -> dict[str, Any]:
    return EC2 | {"detail": detail}


DOCUMENTED = [
    # exact values, a list is OR, fields are AND; an event array matches on any element
    ({"source": ["aws.ec2", "aws.fargate"]}, EC2, True),
    ({"source": ["aws.ec2"], "detail": {"state": ["running"]}}, EC2, False),
    ({"detail": {"state": ["running"]}}, ec2(state=["initializing", "running"]), True),
    ({"resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111", "x"]}, EC2, True),
    ({"detail": {"eventVersion": [""]}}, ec2(eventVersion=""), True),
    ({"detail": {"responseElements": [None]}}, ec2(responseElements=None), True),
    ({"detail": {"eventVersion": [None]}}, ec2(eventVersion=""), False),  # null and "" are not interchangeable
    ({"detail": {"responseElements": [""]}}, ec2(responseElements=None), False),
    ({"detail": {"severity": {"score": [1]}, "count": [2]}}, ec2(severity={"score": 1}, count=2), True),
    # prefix / suffix, and with equals-ignore-case
    ({"time": [{"prefix": "2015-11-11"}]}, EC2, True),
    ({"region": [{"prefix": "eu-"}]}, EC2, False),
    ({"detail": {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}}, ec2(service="eventbridge"), True),
    ({"detail": {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}}, ec2(service="my-eventb"), False),
    ({"detail": {"FileName": [{"suffix": ".png"}]}}, ec2(FileName="a.png"), True),
    ({"detail": {"FileName": [{"suffix": ".png"}]}}, ec2(FileName="a.PNG"), False),
    ({"detail": {"FileName": [{"suffix": {"equals-ignore-case": ".png"}}]}}, ec2(FileName="a.PNG"), True),
    ({"detail": {"state": [{"prefix": "pen"}]}}, ec2(state=5), False),  # prefix only matches strings
    # equals-ignore-case
    ({"detail": {"Name": [{"equals-ignore-case": "alice"}]}}, ec2(Name="ALICE"), True),
    ({"detail": {"Name": [{"equals-ignore-case": "alice"}]}}, ec2(Name="alicia"), False),
    # wildcard: * is any run of characters (none included); `?` is a plain character; \* a star
    ({"detail": {"FilePath": [{"wildcard": "dir/*.png"}]}}, ec2(FilePath="dir/a/b.png"), True),
    ({"detail": {"FilePath": [{"wildcard": "dir/*.png"}]}}, ec2(FilePath="dir/.png"), True),
    ({"detail": {"FilePath": [{"wildcard": "dir/*.png"}]}}, ec2(FilePath="other/a.png"), False),
    ({"detail": {"Name": [{"wildcard": "a?c"}]}}, ec2(Name="abc"), False),
    ({"detail": {"Name": [{"wildcard": "a?c"}]}}, ec2(Name="a?c"), True),
    ({"detail": {"Name": [{"wildcard": "a\\*c"}]}}, ec2(Name="a*c"), True),
    ({"detail": {"Name": [{"wildcard": "a\\*c"}]}}, ec2(Name="abc"), False),
    ({"detail": {"Name": [{"wildcard": "*Title*"}]}}, ec2(Name="My Title Page"), True),
    # anything-but: a value, a list (all strings or all numbers), a prefix/suffix/ignore-case/wildcard
    ({"detail": {"state": [{"anything-but": "initializing"}]}}, EC2, True),
    ({"detail": {"state": [{"anything-but": "pending"}]}}, EC2, False),
    ({"detail": {"x-limit": [{"anything-but": 123}]}}, ec2(**{"x-limit": 123}), False),
    ({"detail": {"x-limit": [{"anything-but": 123}]}}, ec2(**{"x-limit": 124}), True),
    ({"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}}, ec2(state="stopped"), False),
    ({"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}}, ec2(**{"x-limit": 400}), True),
    ({"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}, ec2(state="initializing"), False),
    ({"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}, EC2, True),
    ({"detail": {"FileName": [{"anything-but": {"suffix": ".png"}}]}}, ec2(FileName="a.png"), False),
    ({"detail": {"state": [{"anything-but": {"equals-ignore-case": "Pending"}}]}}, EC2, False),
    ({"detail": {"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]}}, ec2(FilePath="a/lib/b"), False),
    ({"detail": {"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]}}, ec2(FilePath="a/bin/b"), True),
    ({"detail": {"missing": [{"anything-but": "x"}]}}, EC2, False),  # anything-but needs the field
    # numeric, within -1e9..1e9
    ({"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}]}}, ec2(**{"c-count": 5}), True),
    ({"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}]}}, ec2(**{"c-count": 0}), False),
    ({"detail": {"d-count": [{"numeric": ["<", 10]}]}}, ec2(**{"d-count": 9.5}), True),
    ({"detail": {"x-limit": [{"numeric": ["=", 3.018e2]}]}}, ec2(**{"x-limit": 301.8}), True),
    ({"detail": {"c-count": [{"numeric": [">", 0]}]}}, ec2(**{"c-count": "5"}), False),  # JSON numbers only
    # exists: leaves only
    ({"detail": {"state": [{"exists": True}]}}, EC2, True),
    ({"detail": {"c-count": [{"exists": False}]}}, EC2, True),
    ({"detail": {"c-count": [{"exists": True}]}}, ec2(**{"c-count": {"c1": 100}}), False),
    ({"detail": {"c-count": [{"exists": False}]}}, ec2(**{"c-count": {"c1": 100}}), True),
    ({"detail": {"responseElements": [{"exists": True}]}}, ec2(responseElements=None), True),
    # cidr, IPv4 and IPv6
    ({"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/24"}]}}, ec2(sourceIPAddress="10.0.0.255"), True),
    ({"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/24"}]}}, ec2(sourceIPAddress="10.0.1.0"), False),
    ({"detail": {"sourceIPAddress": [{"cidr": "2001:db8::/32"}]}}, ec2(sourceIPAddress="2001:db8::1"), True),
    ({"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/24"}]}}, ec2(sourceIPAddress="not an ip"), False),
    # $or, at the top and nested
    ({"$or": [{"source": ["aws.s3"]}, {"detail-type": ["EC2 Instance State-change Notification"]}]}, EC2, True),
    ({"$or": [{"source": ["aws.s3"]}, {"detail-type": ["Other"]}]}, EC2, False),
    ({"detail": {"$or": [{"c-count": [{"numeric": [">", 0]}]}, {"state": ["pending"]}]}}, EC2, True),
    ({"source": ["aws.ec2"], "$or": [{"detail-type": ["Other"]}, {"detail": {"state": ["stopped"]}}]}, EC2, False),
]
# What moto 5.2.5's own matcher answers otherwise (Python's True == 1), fixed by
# adapt_event_pattern_json_types: JSON booleans are not numbers; cidr matches IP strings only.
JSON_TYPES = [
    ({"detail": {"n": [1]}}, ec2(n=True), False),
    ({"detail": {"n": [True]}}, ec2(n=1), False),
    ({"detail": {"n": [True]}}, ec2(n=True), True),
    ({"detail": {"n": [False]}}, ec2(n=[0, False]), True),
    ({"detail": {"n": [{"numeric": ["=", 1]}]}}, ec2(n=True), False),
    ({"detail": {"ip": [{"cidr": "0.0.0.0/24"}]}}, ec2(ip=5), False),
    ({"detail": {"ip": [{"cidr": "0.0.0.0/24"}]}}, ec2(ip=[5, "0.0.0.5"]), True),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), DOCUMENTED + JSON_TYPES)
def test_rules_match_as_eventbridge_documents(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    if set(pattern) <= TOP_LEVEL_FIELDS | {"$or"}:
        check(pattern)  # the catalog accepts every documented pattern on the fields it may match
    assert pattern_matches(pattern, event) is expected


def test_the_table_covers_every_operator_the_catalog_accepts() -> None:
    def operators(node: Any) -> set[str]:
        if isinstance(node, dict):
            return {k for k in node if k in OPERATORS} | {o for v in node.values() for o in operators(v)}
        if isinstance(node, list):
            return {o for v in node for o in operators(v)}
        return set()

    assert {o for pattern, _, _ in DOCUMENTED for o in operators(pattern)} == OPERATORS


def test_event_pattern_json_types() -> None:
    from moto.events.models import EventPattern

    flatten = original(EventPattern, "_flatten_dict")
    filters = original(EventPattern, "_does_item_match_filters")
    named = original(EventPattern, "_does_item_match_named_filter")
    pattern = EventPattern.load("{}")
    # the gap: moto's own functions answer with Python's equality
    assert filters(pattern, flatten({"n": True})["n"], [1]) is True
    assert named(True, {"numeric": ["=", 1]}) is True
    assert named(5, {"cidr": "0.0.0.0/24"}) is True
    for rule, event, expected in JSON_TYPES:
        assert pattern_matches(rule, event) is expected, (rule, event)


STREAM_RECORD = {
    "eventName": "MODIFY",
    "eventSource": "aws:dynamodb",
    "dynamodb": {
        "Keys": {"pk": {"S": "RUN#1"}},
        "NewImage": {"status": {"S": "SUCCEEDED"}, "flag": {"BOOL": True}, "args": {"M": {"a.b": {"S": "x"}}}},
        "OldImage": {"status": {"S": "RUNNING"}, "flag": {"BOOL": False}, "args": {"M": {}}},
    },
    "dynamodb.NewImage": {"status": {"S": "FAILED"}},  # a dotted key flattens onto the same path
}
LOOKUPS = [
    {"dynamodb": {"NewImage": {"status": {"S": ["SUCCEEDED", "FAILED"]}}}},
    {"dynamodb": {"NewImage": {"status": {"S": ["FAILED"]}}}},
    {"dynamodb": {"NewImage": {"flag": {"BOOL": [True]}}, "OldImage": {"flag": {"BOOL": [True]}}}},
    {"dynamodb": {"OldImage": {"args": {"M": [{"exists": True}]}}}},
    {"dynamodb": {"NewImage": {"args": {"M": {"a.b": {"S": ["x"]}}}}}},
    {"dynamodb": {"NewImage": {"missing": [{"exists": False}]}}},
    {"$or": [{"eventName": ["INSERT"]}, {"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "RUN#"}]}}}}]},
    {"eventName": ["MODIFY"], "dynamodb": {}},
]


@pytest.mark.parametrize("pattern", LOOKUPS)
def test_event_pattern_lookups_match_as_the_whole_flattened_event(pattern: dict[str, Any]) -> None:
    """Flattening only the paths a pattern reads (adapt_event_pattern_lookups) answers as flattening
    the whole event does (moto's way, with the JSON types adaptation)."""
    from moto.events.models import EventPattern

    rule = EventPattern.load(json.dumps(pattern))
    whole = EventPattern._flatten_dict(json.loads(json.dumps(STREAM_RECORD)))
    assert rule.matches_event(STREAM_RECORD) is rule._does_event_match(whole, pattern)


def test_event_pattern_lookups_flatten_only_what_the_pattern_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    from jobline_local.adaptations import delivery

    typed: list[Any] = []
    monkeypatch.setattr(delivery, "_typed", lambda value: typed.append(value) or value)
    assert pattern_matches(LOOKUPS[1], STREAM_RECORD) is True
    # the two values on the one path read (the dotted key's comes last and is the one matched)
    assert typed == ["SUCCEEDED", "FAILED"], "values the pattern does not read were flattened"


# ---------------------------------------------------------------- InputTransformer
RULE_ARN = "arn:aws:events:us-east-2:123456789012:rule/example"
DOC_EVENT = EC2 | {"detail": {"instance-id": "i-0123456789", "state": "RUNNING"}}
PATHS = {"timestamp": "$.time", "instance": "$.detail.instance-id", "state": "$.detail.state"}


@pytest.mark.parametrize(
    ("template", "expected"),
    [  # the user guide's "Input transform examples" (eb-transform-target-input.html)
        ('"instance <instance> is in <state>"', "instance i-0123456789 is in RUNNING"),
        ('{"instance" : <instance>, "state": <state>}', {"instance": "i-0123456789", "state": "RUNNING"}),
        (
            '{"instance" : <instance>, "state": "<state>", '
            '"instanceStatus": "instance \\"<instance>\\" is in <state>"}',
            {"instance": "i-0123456789", "state": "RUNNING", "instanceStatus": 'instance "i-0123456789" is in RUNNING'},
        ),
        (
            '{"instance" : <instance>, "state": [ 9, <state>, true ], "Transformed" : "Yes"}',
            {"instance": "i-0123456789", "state": [9, "RUNNING", True], "Transformed": "Yes"},
        ),
        ('"<aws.events.rule-name> triggered"', "example triggered"),
        (
            '{"ruleArn" : <aws.events.rule-arn>, "ruleName" : <aws.events.rule-name>, "all": <aws.events.event.json>}',
            {"ruleArn": RULE_ARN, "ruleName": "example", "all": DOC_EVENT},
        ),
        ('{"head": <aws.events.event>}', {"head": {k: v for k, v in DOC_EVENT.items() if k != "detail"}}),
    ],
)
def test_input_transformer_as_eventbridge_documents(template: str, expected: Any) -> None:
    transformer = {"InputPathsMap": PATHS, "InputTemplate": template}
    assert lambda_target_payload({"InputTransformer": transformer}, DOC_EVENT, RULE_ARN) == expected


def test_moto_lacks_the_input_transformer_jobline_uses() -> None:
    from moto.events.utils import EventTemplateParser

    template = rule_input_template_for("word-count")
    with pytest.raises(KeyError):  # moto needs its own ingestion-time field in the event
        EventTemplateParser.parse(input_template=template, input_paths_map={}, event=dict(DOC_EVENT))
    with pytest.raises(json.JSONDecodeError):  # and knows no aws.events.event (nor rule-arn, rule-name)
        EventTemplateParser.parse(
            input_template='{"head": <aws.events.event>}', input_paths_map={}, event=DOC_EVENT | {"ingestion-time": 0}
        )
    delivered = lambda_target_payload({"InputTransformer": {"InputTemplate": template}}, DOC_EVENT, RULE_ARN)
    assert delivered == {"job": "word-count", "trigger": 0, "event": DOC_EVENT}


def rule_input_template_for(job: str) -> str:
    from jobline.catalog import parse_catalog
    from jobline_tools.codegen import rule_input_template

    raw = {"jobs": [{"name": job, "description": "d", "backend": {"type": "batch"}}]}
    return rule_input_template(parse_catalog(raw).jobs[0], 0)
