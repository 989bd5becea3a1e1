"""Every adaptation of moto's internals, in one place.

jobline runs locally on moto (pinned in requirements-dev.lock). Where the pinned moto falls
short of AWS, the gap is closed here and nowhere else, and tests/test_moto_adaptations.py holds
one test per adaptation that fails if moto stops behaving as the adaptation assumes.

Some adaptations hand work to the local stack through hooks (`set_hooks`): the stack runs
Lambda functions and Batch jobs itself. Without a hook, moto's own behaviour is kept.
"""

from __future__ import annotations

import copy
import itertools
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import botocore.session
from botocore.model import OperationModel

PINNED_MOTO = "5.2.5"
_applied = False

# (class or module, attribute) -> moto's own value, before any adaptation replaced it.
originals: dict[tuple[Any, str], Any] = {}

# Where adapted code hands work to the local stack; each is None until the stack sets it.
#  lambda_target(rule_arn, target, payload): an EventBridge rule delivers `payload` to a Lambda target
#  lambda_invoke(function_arn, payload, invocation_type) -> (payload, function error, log tail) or None
#  batch_job(job): a submitted moto Batch Job, to be run by the local compute
hooks: dict[str, Callable[..., Any] | None] = {"lambda_target": None, "lambda_invoke": None, "batch_job": None}


def set_hooks(**new: Callable[..., Any] | None) -> None:
    unknown = set(new) - set(hooks)
    if unknown:
        raise KeyError(f"unknown hooks {sorted(unknown)}")
    hooks.update(new)


def _replace(owner: Any, name: str, value: Any) -> None:
    originals.setdefault((owner, name), getattr(owner, name))
    setattr(owner, name, value)


def iso_time(value: Any) -> str:
    """EventBridge's `time`: ISO 8601 UTC to the second (moto keeps epoch seconds)."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


@lru_cache(maxsize=64)
def _operation(service: str, action: str) -> OperationModel:
    """botocore's model of `action`, given in camelCase (ASL) or snake_case (moto's own calls)."""
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model(service)
    wanted = xform_name(action)
    for name in model.operation_names:
        if xform_name(name) == wanted:
            return model.operation_model(name)
    raise KeyError(f"{service} has no operation {action}")


def _adapt_optimized_integration_casing() -> None:
    """Optimized integrations (batch:submitJob.sync, ...) take PascalCase parameters and return
    PascalCase output. AWS translates both ways; moto 5.2.5's port leaves `_normalise_parameters`
    and `_normalise_response` empty, so boto3 is called with `JobName=` and fails, and the
    output keeps boto3's camelCase. Translate with botocore's shapes, as AWS does."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch import (
        StateTaskServiceBatch,
    )

    def normalise_parameters(
        self: Any, parameters: dict, boto_service_name: str | None = None, service_action_name: str | None = None
    ) -> None:
        service = self._get_boto_service_name(boto_service_name)
        operation = _operation(service, service_action_name or self.resource.api_action)
        self._to_boto_request(parameters, operation.input_shape)

    def normalise_response(
        self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None
    ) -> None:
        service = self._get_boto_service_name(boto_service_name)
        operation = _operation(service, service_action_name or self.resource.api_action)
        self._from_boto_response(response, operation.output_shape)

    _replace(StateTaskServiceBatch, "_normalise_parameters", normalise_parameters)
    _replace(StateTaskServiceBatch, "_normalise_response", normalise_response)


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


def _adapt_rule_lambda_targets() -> None:
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

    _replace(Rule, "send_to_targets", send_to_targets)


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


def _adapt_s3_eventbridge_notification() -> None:
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

    _replace(notifications, "_send_event_bridge_message", send_event_bridge_message)


def _adapt_batch_job_start() -> None:
    """moto 5.2.5 runs each submitted Batch job on its own thread (Docker, or nothing at all) and
    moves it SUBMITTED -> SUCCEEDED as it sees fit. Hand the job to the `batch_job` hook (the
    local compute) instead, so that nothing but the local compute moves it."""
    from moto.batch.models import Job

    original = Job.start

    def start(self: Any) -> None:
        run = hooks["batch_job"]
        if run is None:
            original(self)
        else:
            run(self)

    _replace(Job, "start", start)


def _adapt_batch_job_description() -> None:
    """moto 5.2.5's Job description (DescribeJobs, and so `.sync`) appends the job definition's
    environment and AWS_BATCH_JOB_ID to the submitted overrides on every call, so the list grows
    with each describe, and drops container.exitCode/reason of a stopped job. Describe without
    mutating and keep the exit code and reason, as AWS does."""
    from moto.batch.models import Job

    original_property = Job._get_container_property
    original_details = Job._container_details

    def get_container_property(self: Any, p: str, default: Any) -> Any:
        if p != "environment":
            return original_property(self, p, default)
        job_env = [dict(e) for e in self.container_overrides.get("environment", [])]
        given = {e["name"] for e in job_env}
        jd_env = (self.job_definition.container_properties or {}).get("environment", [])
        job_env.extend(dict(e) for e in jd_env if e["name"] not in given)
        job_env.append({"name": "AWS_BATCH_JOB_ID", "value": self.job_id})
        return job_env

    def container_details(self: Any) -> dict[str, Any]:
        details = original_details(self)
        if self.exit_code is not None:
            details["exitCode"] = self.exit_code
        if getattr(self, "container_reason", None):
            details["reason"] = self.container_reason
        return details

    _replace(Job, "_get_container_property", get_container_property)
    _replace(Job, "_container_details", container_details)


def _adapt_lambda_invoke() -> None:
    """Without Docker, moto 5.2.5's Invoke runs no code (it fails, or echoes the payload). Route
    Invoke to the `lambda_invoke` hook (the local Lambda service) so `aws lambda invoke` and
    Step Functions' lambda:invoke run the real handler, with Lambda's response headers."""
    import base64

    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction.invoke

    def invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> str | bytes:
        run = hooks["lambda_invoke"]
        if run is None:
            return original(self, body, request_headers, response_headers)
        invocation_type = request_headers.get("x-amz-invocation-type", "RequestResponse")
        payload = json.loads(body) if body else {}
        answer = run(self.function_arn, payload, invocation_type)
        if answer is None:  # not a function the local stack runs
            return original(self, body, request_headers, response_headers)
        result, function_error, log_tail = answer
        if function_error:
            response_headers["x-amz-function-error"] = function_error
        if invocation_type == "RequestResponse" and request_headers.get("x-amz-log-type") == "Tail":
            response_headers["x-amz-log-result"] = base64.b64encode(log_tail.encode()[-4096:]).decode()
        response_headers["x-amz-executed-version"] = "$LATEST"
        return result

    _replace(LambdaFunction, "invoke", invoke)


def _adapt_asl_parse_cache() -> None:
    """moto 5.2.5 parses a state machine's definition with its ANTLR grammar at every execution
    start (about 0.25 s of CPU for jobline's definition on this machine, and the local stack's
    main bottleneck). Keep the parse tree of recent definitions and only rebuild the evaluation
    components (fresh for each execution, as before) from it."""
    import threading

    from antlr4 import CommonTokenStream, InputStream
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLLexer import ASLLexer
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser
    from moto.stepfunctions.parser.asl.parse import asl_parser
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    trees: dict[str, Any] = {}
    lock = threading.Lock()
    original = asl_parser.AmazonStateLanguageParser.parse

    def parse(definition: str) -> tuple[Any, Any]:
        with lock:
            tree = trees.get(definition)
        if tree is None:
            listener = asl_parser.SyntaxErrorListener()
            parser = ASLParser(CommonTokenStream(ASLLexer(InputStream(definition))))
            parser.removeErrorListeners()
            parser.addErrorListener(listener)
            tree = parser.state_machine()
            if listener.errors:
                raise asl_parser.ASLParserException(errors=listener.errors)
            with lock:
                if len(trees) >= 32:
                    trees.pop(next(iter(trees)))
                trees[definition] = tree
        return Preprocessor().visit(tree), tree

    originals.setdefault((asl_parser.AmazonStateLanguageParser, "parse"), original)
    asl_parser.AmazonStateLanguageParser.parse = staticmethod(parse)


_ENGINE_CLIENT_USERS = [
    "asl.utils.boto_client",
    "asl.component.state.exec.state_task.lambda_eval_utils",
    "asl.component.state.exec.state_map.result_writer.resource_eval.resource_eval_s3",
    "asl.component.state.exec.state_map.item_reader.eval.resource_eval_s3",
    *(
        f"asl.component.state.exec.state_task.service.state_task_service_{name}"
        for name in ("unsupported", "glue", "events", "ecs", "sqs", "sfn", "dynamodb", "batch", "sns", "aws_sdk")
    ),
]


def _adapt_engine_client_cache() -> None:
    """moto 5.2.5's Step Functions engine builds a new boto3 client for every task it runs (tens of
    milliseconds of CPU each, several per run). Reuse one client per service and region (boto3
    clients are thread-safe); tasks with their own credentials still get a new one."""
    import importlib
    import threading

    from moto.stepfunctions.parser.asl.utils import boto_client

    original = boto_client.boto_client_for
    cache: dict[tuple[str, str, bool, str], Any] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        if state_credentials is not None:
            return original(region=region, service=service, state_credentials=state_credentials)
        from moto.core.models import botocore_stubber
        from moto.settings import moto_server_port

        key = (region, service, botocore_stubber.enabled, moto_server_port())
        with lock:
            if key not in cache:
                cache[key] = original(region=region, service=service)
            return cache[key]

    for name in _ENGINE_CLIENT_USERS:
        module = importlib.import_module(f"moto.stepfunctions.parser.{name}")
        if getattr(module, "boto_client_for", None) is original:
            _replace(module, "boto_client_for", boto_client_for)


def _adapt_server_dispatch_cache() -> None:
    """moto 5.2.5's server finds the backend of every request under one global lock, listing
    moto's package directory (a stat per service, ~200) and trying every URL pattern each time:
    requests queue behind it. The answer for a host never changes: remember it."""
    import threading

    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    modules = tuple(backends.list_of_moto_modules())
    _replace(backends, "list_of_moto_modules", lambda: modules)

    original = DomainDispatcherApplication.get_backend_for_host
    found: dict[str | None, Any] = {}
    lock = threading.Lock()

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        with lock:
            if host in found:
                return found[host]
        backend = original(self, host)
        if backend is not None:
            with lock:
                found[host] = backend
        return backend

    _replace(DomainDispatcherApplication, "get_backend_for_host", get_backend_for_host)


ADAPTATIONS = (
    _adapt_optimized_integration_casing,
    _adapt_rule_lambda_targets,
    _adapt_s3_eventbridge_notification,
    _adapt_batch_job_start,
    _adapt_batch_job_description,
    _adapt_lambda_invoke,
    _adapt_asl_parse_cache,
    _adapt_engine_client_cache,
    _adapt_server_dispatch_cache,
)


def apply() -> None:
    """Apply every adaptation once. Refuses a moto other than the pinned one: each adaptation
    was written against its internals."""
    global _applied
    if _applied:
        return
    import moto

    if moto.__version__ != PINNED_MOTO:
        raise RuntimeError(f"jobline's local stack is adapted to moto {PINNED_MOTO}, found {moto.__version__}")
    for adaptation in ADAPTATIONS:
        adaptation()
    _applied = True
