"""Adaptations of event delivery: EventBridge rules delivering to Lambda targets (through the
local Lambda service) and S3's EventBridge notifications, shaped and routed as AWS sends them."""

from __future__ import annotations

import copy
import itertools
import json
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


def lambda_target_payload(target: dict[str, Any], event: dict[str, Any]) -> Any:
    """What an EventBridge rule hands a target: the event (with `time` as AWS writes it), or the
    target's Input, InputPath or InputTransformer applied to it."""
    from moto.events.utils import EventTemplateParser

    event = {k: v for k, v in event.items() if k != "ingestion-time"}
    event["time"] = iso_time(event.get("time"))
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        from jsonpath_ng.ext import parse

        found = [m.value for m in parse(target["InputPath"]).find(event)]
        return found[0] if found else None
    if "InputTransformer" in target:
        transformer = target["InputTransformer"]
        return EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=event,
        )
    return event


def adapt_rule_lambda_targets() -> None:
    """moto 5.2.5's Rule.send_to_targets raises NotImplementedError for a Lambda target (and so
    fails the whole PutEvents call), and ignores the rule's state. Deliver Lambda targets
    through the `lambda_target` hook (the local Lambda service, which invokes asynchronously as
    EventBridge does); every other target type keeps moto's delivery."""
    from moto.events.models import Rule
    from moto.utilities.arns import parse_arn

    original = Rule.send_to_targets

    def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
        if self.state != "ENABLED" or not self.event_pattern.matches_event(original_event):
            return
        deliver = hooks["lambda_target"]
        others = []
        for target in self.targets:
            if deliver is not None and parse_arn(target["Arn"]).service == "lambda":
                deliver(self.arn, target, lambda_target_payload(target, original_event))
            else:
                others.append(target)
        if others:
            rest = copy.copy(self)
            rest.targets = others
            original(rest, original_event, transform_input)

    replace(Rule, "send_to_targets", send_to_targets)


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
