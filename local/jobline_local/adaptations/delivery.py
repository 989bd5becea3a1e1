"""Adaptations of event delivery: EventBridge rules matching (moto's pattern matcher, with JSON's
types) and delivering to Lambda targets (through the local Lambda service, InputTransformer as
EventBridge applies it), and S3's EventBridge notifications, shaped and routed as AWS sends them."""

from __future__ import annotations

import copy
import itertools
import json
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from jobline_local.adaptations.hooks import hooks
from jobline_local.adaptations.patching import replace


def iso_time(value: Any) -> str:
    """EventBridge's `time`: ISO 8601 UTC to the second (moto keeps epoch seconds)."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def lambda_target_payload(target: dict[str, Any], event: dict[str, Any], rule_arn: str) -> Any:
    """What an EventBridge rule hands a target: the event (with `time` as AWS writes it), or the
    target's Input, InputPath or InputTransformer applied to it."""
    ingested = iso_time(event.get("ingestion-time", event.get("time")))
    event = {k: v for k, v in event.items() if k != "ingestion-time"}
    event["time"] = iso_time(event.get("time"))
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        from jsonpath_ng.ext import parse

        found = [m.value for m in parse(target["InputPath"]).find(event)]
        return found[0] if found else None
    if "InputTransformer" in target:
        return transform_input(target["InputTransformer"], event, rule_arn, ingested)
    return event


_PLACEHOLDER = re.compile(r"<([^<>\s]+)>")


def transform_input(transformer: dict[str, Any], event: dict[str, Any], rule_arn: str, ingested: str) -> Any:
    """EventBridge's InputTransformer, which moto 5.2.5's EventTemplateParser only approximates (it
    lacks aws.events.event, rule-arn and rule-name, needs an ingestion-time and falls back to its
    own paths map when InputPathsMap is empty). From the EventBridge user guide, "Amazon
    EventBridge input transformation": InputPathsMap names JSON paths into the event (a path that
    matches nothing defines no variable); the predefined variables aws.events.rule-arn,
    rule-name, event.ingestion-time, event (the event without `detail`) and event.json (the whole
    event); a variable inside a JSON string is inserted as its text, elsewhere as JSON (a string
    gets its quotes: the guide's "Simple JSON" example)."""
    from jsonpath_ng.ext import parse

    values: dict[str, Any] = {}
    for name, path in (transformer.get("InputPathsMap") or {}).items():
        if found := parse(path).find(event):
            values[name] = found[0].value
    values |= {
        "aws.events.rule-arn": rule_arn,
        "aws.events.rule-name": rule_arn.rsplit("/", 1)[-1],
        "aws.events.event.ingestion-time": ingested,
        "aws.events.event": {k: v for k, v in event.items() if k != "detail"},
        "aws.events.event.json": event,
    }
    template = transformer["InputTemplate"]
    out, in_string, index = [], False, 0
    while index < len(template):
        char = template[index]
        match = _PLACEHOLDER.match(template, index) if char == "<" else None
        if match and match[1] in values:
            value = values[match[1]]
            out.append(value if in_string and isinstance(value, str) else json.dumps(value, separators=(",", ":")))
            index = match.end()
            continue
        if char == "\\" and in_string:
            out.append(template[index : index + 2])
            index += 2
            continue
        if char == '"':
            in_string = not in_string
        out.append(char)
        index += 1
    return json.loads("".join(out))  # a Lambda target takes JSON; anything else is the template's fault


class _JsonBool:
    """A JSON true/false inside moto's matcher: equal only to the same boolean, never a number."""

    __slots__ = ("value",)

    def __init__(self, value: bool) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _JsonBool) and other.value is self.value

    def __hash__(self) -> int:
        return hash(("json-bool", self.value))


def _typed(value: Any) -> Any:
    if isinstance(value, bool):
        return _JsonBool(value)
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return value


def _flatten_typed(
    node: Any, prefix: str = "", result: dict[str, Any] | None = None, wanted: set[str] | None = None
) -> dict[str, Any]:
    """moto's EventPattern._flatten_dict (a path per leaf; a non-empty object is walked, anything
    else, an empty object too, is a leaf) with booleans typed; with `wanted`, only the paths in it."""
    if result is None:
        result = {}
    if isinstance(node, dict):
        for name, value in node.items():
            path = f"{prefix}.{name}" if prefix else name
            if wanted is not None and path not in wanted:
                continue
            if isinstance(value, dict) and value:
                _flatten_typed(value, path, result, wanted)
            else:
                result[path] = _typed(value)
    return result


def _looked_up(pattern: dict[str, Any], prefix: str = "", paths: set[str] | None = None) -> set[str]:
    """Every event path moto's `_does_event_match` reads for `pattern`, and each path's dotted
    prefixes (the objects walked to reach it)."""
    paths = set() if paths is None else paths
    for name, value in pattern.items():
        if name == "$or":
            for branch in value:
                if isinstance(branch, dict):
                    _looked_up(branch, prefix, paths)
            continue
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(value, dict):
            _looked_up(value, path, paths)
        elif isinstance(value, list):
            paths.add(path)
            paths.update(path[:at] for at, char in enumerate(path) if char == ".")
    return paths


def adapt_event_pattern_json_types() -> None:
    """moto 5.2.5's event pattern matcher compares with Python's `==`, where True == 1: the pattern
    [1] matches the event value true, [true] matches 1, numeric matches booleans, and cidr reads
    the number 5 as the address 0.0.0.5. EventBridge matches JSON values by their JSON type (a
    boolean is no number; cidr matches IP address strings). Keep moto's matcher, with booleans
    kept apart from numbers (event leaves and exact pattern values) and cidr on strings only."""
    from moto.events.models import EventPattern

    match_filters = EventPattern._does_item_match_filters
    match_named = EventPattern._does_item_match_named_filter

    def match_typed_filters(self: Any, item: Any, filters: list[Any]) -> bool:
        items = item if isinstance(item, list) else [item]
        if any(_JsonBool(f) in items for f in filters if isinstance(f, bool)):
            return True
        others = [f for f in filters if not isinstance(f, bool)]
        return bool(others) and match_filters(self, item, others)

    def match_named_filter(item: Any, pattern: dict[str, Any]) -> bool:
        if "cidr" in pattern:
            items = item if isinstance(item, list) else [item]
            return any(isinstance(i, str) and match_named(i, pattern) for i in items)
        return match_named(item, pattern)

    replace(EventPattern, "_flatten_dict", staticmethod(_flatten_typed))
    replace(EventPattern, "_does_item_match_filters", match_typed_filters)
    replace(EventPattern, "_does_item_match_named_filter", staticmethod(match_named_filter))


def adapt_event_pattern_lookups() -> None:
    """moto 5.2.5 matches a pattern by flattening the whole event into a path per leaf, then reading
    the paths the pattern names: a DynamoDB stream record is flattened with both its images for a
    filter that reads one attribute, for every record and every filter. The paths a pattern reads
    are fixed (worked out once per pattern); only those, and the objects on the way to them, are
    flattened. A path's value is the same either way, so every match is moto's (speed only)."""
    from moto.events.models import EventPattern

    def matches_event(self: Any, event: Any) -> bool:
        if not self._pattern:
            return True
        wanted = self.__dict__.get("_looked_up")
        if wanted is None:
            wanted = self._looked_up = _looked_up(self._pattern)
        event = json.loads(json.dumps(event))
        return self._does_event_match(_flatten_typed(event, wanted=wanted), self._pattern)

    replace(EventPattern, "matches_event", matches_event)


def pattern_matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether an EventBridge (or Lambda event filter) pattern matches, as the local stack decides:
    moto's matcher with the adaptations above."""
    from moto.events.models import EventPattern

    from jobline_local.adaptations import install

    install()

    return EventPattern.load(json.dumps(pattern)).matches_event(event)


def adapt_rule_lambda_targets() -> None:
    """moto 5.2.5's Rule.send_to_targets raises NotImplementedError for a Lambda target (and so
    fails the whole PutEvents call), and ignores the rule's state. Deliver Lambda targets
    through the `lambda_target` hook (the local Lambda service, which invokes asynchronously as
    EventBridge does), and SQS targets that transform their input with that input as the message
    body (moto's own transformer lacks `<aws.events.event.json>`, which the intake queues' rules
    use); every other target keeps moto's delivery."""
    from moto.events.models import Rule
    from moto.utilities.arns import parse_arn

    original = Rule.send_to_targets

    def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
        if self.state != "ENABLED" or not self.event_pattern.matches_event(original_event):
            return
        deliver = hooks["lambda_target"]
        others = []
        for target in self.targets:
            service = parse_arn(target["Arn"]).service
            if deliver is not None and service == "lambda":
                deliver(self.arn, target, lambda_target_payload(target, original_event, self.arn))
            elif service == "sqs" and {"Input", "InputPath", "InputTransformer"} & set(target):
                _send_to_queue(target, lambda_target_payload(target, original_event, self.arn))
            else:
                others.append(target)
        if others:
            rest = copy.copy(self)
            rest.targets = others
            original(rest, original_event, transform_input)

    replace(Rule, "send_to_targets", send_to_targets)


def _send_to_queue(target: dict[str, Any], payload: Any) -> None:
    """An SQS target gets the (transformed) input as its message body, JSON as JSON text
    (EventBridge user guide, "Amazon SQS queue as a target")."""
    from moto.sqs import sqs_backends
    from moto.utilities.arns import parse_arn

    arn = parse_arn(target["Arn"])
    sqs_backends[arn.account][arn.region].send_message(
        queue_name=arn.resource_id,
        message_body=payload if isinstance(payload, str) else json.dumps(payload),
        group_id=target.get("SqsParameters", {}).get("MessageGroupId"),
    )


_S3_REASONS = {
    "Put": "PutObject",
    "Post": "PostObject",
    "Copy": "CopyObject",
    "CompleteMultipartUpload": "CompleteMultipartUpload",
    "Delete": "DeleteObject",
    "DeleteMarkerCreated": "DeleteObject",
}
_sequencer = itertools.count(time.time_ns() // 1000)


def _has_tags(account_id: str, key: Any) -> bool:
    from moto.s3.models import s3_backends

    return bool(s3_backends[account_id]["aws"].tagger.list_tags_for_resource(key.arn)["Tags"])


def adapt_s3_eventbridge_notification() -> None:
    """With EventBridge notifications on, moto 5.2.5 sends S3 events to the rules of every bus
    (AWS: the default bus only), with one fixed event id and sequencer, `eTag` for `etag`, a
    version-id even when versioning is off and `reason` "ObjectCreated" for "PutObject", and sends
    "Object Tags Added" for every PutObject. Emit the events AWS documents, to the default bus
    only (tag events only when the object has tags)."""
    from moto.events.models import events_backends
    from moto.events.utils import _BASE_EVENT_MESSAGE
    from moto.s3 import notifications

    def send_event_bridge_message(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        detail_type = notifications._detail_type(event_name)
        if detail_type == "Object Tags Added" and not _has_tags(account_id, key):
            return  # moto tags (with nothing) on every PutObject; S3 sends no tag event for that
        obj: dict[str, Any] = {"key": key.name}
        if detail_type == "Object Created":
            obj.update(size=key.size, etag=key.etag.replace('"', ""))
        if key.version_id and key.version_id != "null":
            obj["version-id"] = key.version_id
        obj["sequencer"] = f"{next(_sequencer):018X}"
        action = event_name.split(":")[-1]
        detail: dict[str, Any] = {
            "version": "0",
            "bucket": {"name": bucket.name},
            "object": obj,
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": account_id,
            "source-ip-address": "127.0.0.1",
            "reason": _S3_REASONS.get(action, action),
        }
        if detail_type == "Object Deleted":
            detail["deletion-type"] = (
                "Delete Marker Created" if action == "DeleteMarkerCreated" else "Permanently Deleted"
            )
        event = copy.deepcopy(_BASE_EVENT_MESSAGE)
        event.update(
            {
                "id": str(uuid.uuid4()),
                "detail-type": detail_type,
                "source": "aws.s3",
                "account": account_id,
                "time": time.time(),
                "region": bucket.region_name,
                "resources": [bucket.arn],
                "detail": detail,
                "ingestion-time": time.time(),  # moto's own field; Lambda targets never see it
            }
        )
        default_bus = events_backends[account_id][bucket.region_name].event_buses.get("default")
        if default_bus is None:
            return
        for rule in list(default_bus.rules.values()):
            rule.send_to_targets(event)

    replace(notifications, "_send_event_bridge_message", send_event_bridge_message)
