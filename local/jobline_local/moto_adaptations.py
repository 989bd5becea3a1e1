"""Every adaptation of moto's internals, in one place.

jobline runs locally on moto (pinned in requirements-dev.lock). Where the pinned moto falls
short of AWS, the gap is closed here and nowhere else, and tests/test_moto_adaptations.py holds
one test per adaptation that fails if moto stops behaving as the adaptation assumes.

Some adaptations hand work to the local stack through hooks (`set_hooks`): the stack runs
Lambda functions, Batch jobs, Batch service jobs (SageMaker training), SageMaker processing jobs
and Glue job runs itself. Without a hook, moto's own behaviour is kept (a service job, which
moto does not have, then stays SUBMITTED: nothing runs it).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
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
#  processing_job(job): a new moto FakeProcessingJob (InProgress), to run; StopProcessingJob sets "Stopping"
#  service_job(job): a new ServiceJob (SUBMITTED), to run; TerminateServiceJob sets job.terminate_reason
#  glue_job_run(job, run): a new moto FakeJobRun (STARTING) of the FakeJob; BatchStopJobRun sets "STOPPING"
hooks: dict[str, Callable[..., Any] | None] = {
    "lambda_target": None,
    "lambda_invoke": None,
    "batch_job": None,
    "processing_job": None,
    "service_job": None,
    "glue_job_run": None,
}


def set_hooks(**new: Callable[..., Any] | None) -> None:
    unknown = set(new) - set(hooks)
    if unknown:
        raise KeyError(f"unknown hooks {sorted(unknown)}")
    hooks.update(new)


def _replace(owner: Any, name: str, value: Any) -> None:
    originals.setdefault((owner, name), getattr(owner, name))
    setattr(owner, name, value)


def _add(owner: Any, name: str, value: Any) -> None:
    """Something moto lacks: its original is recorded as None."""
    originals.setdefault((owner, name), getattr(owner, name, None))
    setattr(owner, name, value)


def epoch_ms(value: Any) -> Any:
    """Timestamps as Step Functions renders them in a task's output: epoch milliseconds."""
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp() * 1000)
    if isinstance(value, dict):
        return {k: epoch_ms(v) for k, v in value.items()}
    if isinstance(value, list):
        return [epoch_ms(v) for v in value]
    return value


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


# ==================================================================== the newer backends (issue 4)
# -------------------------------------------------------------------- the Step Functions engine
def _fixed_eval_integration_pattern(
    self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
) -> None:
    """moto 5.2.5's StateTaskServiceCallback._eval_integration_pattern, with one fix: a service
    without .waitForTaskToken (Glue, SageMaker) has no callback endpoint, and the original calls
    `callback_endpoint.interrupt_all()` on None in its `finally`, failing every `.sync` task."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
    from moto.stepfunctions.parser.asl.eval.callback.callback import (
        CallbackOutcomeFailure,
        CallbackOutcomeFailureError,
        CallbackOutcomeSuccess,
        CallbackOutcomeTimedOut,
        CallbackTimeoutError,
        HeartbeatTimedOut,
        HeartbeatTimeoutError,
    )

    task_output = env.stack.pop()
    callback_endpoint = None
    if ResourceCondition.WaitForTaskToken in self._supported_integration_patterns:
        callback_id = env.states.context_object.context_object_data["Task"]["Token"]
        callback_endpoint = env.callback_pool_manager.get(callback_id)
    self.timeout.eval(env=env)
    timeout_seconds = env.stack.pop()
    heartbeat_endpoint = None
    if self.heartbeat:
        self.heartbeat.eval(env=env)
        heartbeat_seconds = env.stack.pop()
        heartbeat_endpoint = callback_endpoint.setup_heartbeat_endpoint(heartbeat_seconds=heartbeat_seconds)
    outcome: Any
    try:
        if self.resource.condition == ResourceCondition.WaitForTaskToken:
            outcome = self._eval_wait_for_task_token(
                env=env,
                timeout_seconds=timeout_seconds,
                callback_endpoint=callback_endpoint,
                heartbeat_endpoint=heartbeat_endpoint,
            )
        else:
            env.stack.append(task_output)
            build = (
                self._build_sync_resolver
                if self.resource.condition == ResourceCondition.Sync
                else self._build_sync2_resolver
            )
            sync_resolver = build(
                env=env,
                resource_runtime_part=resource_runtime_part,
                normalised_parameters=normalised_parameters,
                state_credentials=state_credentials,
            )
            outcome = self._eval_sync(
                env=env,
                timeout_seconds=timeout_seconds,
                callback_endpoint=callback_endpoint,
                heartbeat_endpoint=heartbeat_endpoint,
                sync_resolver=sync_resolver,
            )
    except Exception as integration_exception:
        outcome = integration_exception
    finally:
        if callback_endpoint is not None:
            callback_endpoint.interrupt_all()

    if isinstance(outcome, CallbackOutcomeTimedOut):
        raise CallbackTimeoutError()
    if isinstance(outcome, HeartbeatTimedOut):
        raise HeartbeatTimeoutError()
    if isinstance(outcome, CallbackOutcomeFailure):
        raise CallbackOutcomeFailureError(callback_outcome_failure=outcome)
    if isinstance(outcome, CallbackOutcomeSuccess):
        env.stack.append(json.loads(outcome.output))
    elif isinstance(outcome, Exception):
        raise outcome
    else:
        env.stack.append(outcome)


def _adapt_sync_without_callback() -> None:
    """`.sync` on a service without `.waitForTaskToken` crashes moto 5.2.5 ("'NoneType' object has
    no attribute 'interrupt_all'"): glue:startJobRun.sync fails at once. Also: when the task is
    abandoned (the execution is stopped, or the task times out), AWS stops the job it was waiting
    for; a sync resolver with an `abandon` callable gets it called then."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )

    original_eval_sync = StateTaskServiceCallback._eval_sync

    def eval_sync(
        self: Any,
        env: Any,
        sync_resolver: Any,
        timeout_seconds: Any,
        callback_endpoint: Any,
        heartbeat_endpoint: Any,
    ) -> Any:
        result = original_eval_sync(self, env, sync_resolver, timeout_seconds, callback_endpoint, heartbeat_endpoint)
        abandon = getattr(sync_resolver, "abandon", None)
        if result is None and abandon is not None and not env.is_running():
            try:
                abandon()
            except Exception as error:  # best effort, as in AWS
                import logging

                logging.getLogger(__name__).warning("stopping an abandoned job failed: %r", error)
        return result

    _replace(StateTaskServiceCallback, "_eval_integration_pattern", _fixed_eval_integration_pattern)
    _replace(StateTaskServiceCallback, "_eval_sync", eval_sync)


def _adapt_keyword_path_fields() -> None:
    """moto 5.2.5's ASL lexer reads `"RoleArn.$"` as the Credentials keyword, so in Parameters
    (RunProcessingJob's `"RoleArn.$": "$.processing.RoleArn"`) the field stays a literal
    `RoleArn.$` holding the path text, and CreateProcessingJob gets no RoleArn. A field named
    `<name>.$` takes its value from the path, intrinsic function or context path, as in AWS."""
    from moto.stepfunctions.parser.asl.component.common.payload.payloadvalue.payloadbinding.payload_binding import (
        PayloadBindingStringExpressionSimple,
    )
    from moto.stepfunctions.parser.asl.component.common.payload.payloadvalue.payloadvaluelit.payload_value_str import (
        PayloadValueStr,
    )
    from moto.stepfunctions.parser.asl.component.common.string.string_expression import (
        StringContextPath,
        StringIntrinsicFunction,
        StringJsonPath,
    )
    from moto.stepfunctions.parser.asl.parse.intrinsic.intrinsic_parser import IntrinsicParser
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    original = Preprocessor.visitPayload_binding_value

    def visit_payload_binding_value(self: Any, ctx: Any) -> Any:
        binding = original(self, ctx)
        if not (binding.field.endswith(".$") and isinstance(binding.payload_value, PayloadValueStr)):
            return binding
        text = binding.payload_value.val
        if text.startswith("$$"):
            expression: Any = StringContextPath(context_object_path=text)
        elif text.startswith("$"):
            expression = StringJsonPath(json_path=text)
        else:
            function, _ = IntrinsicParser.parse(text)
            expression = StringIntrinsicFunction(intrinsic_function_derivation=text, function=function)
        return PayloadBindingStringExpressionSimple(field=binding.field[:-2], string_expression_simple=expression)

    _replace(Preprocessor, "visitPayload_binding_value", visit_payload_binding_value)


def _task_failed(env: Any, task: Any, cause: dict[str, Any]) -> Exception:
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    return FailureEventException(
        FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(
                taskFailedEventDetails=TaskFailedEventDetails(
                    resource=task._get_sfn_resource(),
                    resourceType=task._get_sfn_resource_type(),
                    error=StatesErrorNameType.StatesTaskFailed.to_name(),
                    cause=json.dumps(cause, separators=(",", ":")),
                )
            ),
        )
    )


def _service_error(env: Any, task: Any, error: Exception, prefix: str) -> Any:
    """An optimized integration's error from a service: `<Service>.<Code>`, as AWS names it."""
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    assert isinstance(error, ClientError)
    name = f"{prefix}.{error.response['Error']['Code']}"
    return FailureEvent(
        env=env,
        error_name=CustomErrorName(name),
        event_type=HistoryEventType.TaskFailed,
        event_details=EventDetails(
            taskFailedEventDetails=TaskFailedEventDetails(
                error=name,
                cause=error.response["Error"].get("Message", ""),
                resource=task._get_sfn_resource(),
                resourceType=task._get_sfn_resource_type(),
            )
        ),
    )


PROCESSING_RUNNING = ("InProgress", "Stopping")


def _sagemaker_task_class() -> type:
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for
    from moto.stepfunctions.parser.utils import camel_to_snake_case

    class StateTaskServiceSageMaker(StateTaskServiceCallback):
        """SageMaker's optimized integration: request-response for its actions, and `.sync` for
        createProcessingJob, polling DescribeProcessingJob as AWS does."""

        def __init__(self) -> None:
            super().__init__(supported_integration_patterns={ResourceCondition.Sync})

        def _validate_service_integration_is_supported(self) -> None:
            pass  # SageMaker's actions take PascalCase parameters as they are

        def _client(self, resource_runtime_part: Any, state_credentials: Any) -> Any:
            return boto_client_for(
                service="sagemaker", region=resource_runtime_part.region, state_credentials=state_credentials
            )

        def _from_error(self, env: Any, ex: Exception) -> Any:
            if isinstance(ex, ClientError):
                return _service_error(env, self, ex, "SageMaker")
            return super()._from_error(env=env, ex=ex)

        def _eval_service_task(
            self, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
        ) -> None:
            client = self._client(resource_runtime_part, state_credentials)
            response = getattr(client, camel_to_snake_case(self.resource.api_action))(**normalised_parameters)
            response.pop("ResponseMetadata", None)
            env.stack.append(epoch_ms(response))

        def _build_sync_resolver(
            self, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
        ) -> Callable[[], Any]:
            if self.resource.api_action.lower() != "createprocessingjob":
                return super()._build_sync_resolver(
                    env, resource_runtime_part, normalised_parameters, state_credentials
                )
            env.stack.pop()  # CreateProcessingJob's answer; the job is known by its name
            client = self._client(resource_runtime_part, state_credentials)
            name = normalised_parameters["ProcessingJobName"]

            def resolve() -> Any:
                job = client.describe_processing_job(ProcessingJobName=name)
                job.pop("ResponseMetadata", None)
                job = epoch_ms(job)
                if job["ProcessingJobStatus"] in PROCESSING_RUNNING:
                    return None
                if job["ProcessingJobStatus"] == "Completed":
                    return job
                raise _task_failed(env, self, job)

            def abandon() -> None:
                if client.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] == "InProgress":
                    client.stop_processing_job(ProcessingJobName=name)

            resolve.abandon = abandon  # type: ignore[attr-defined]
            return resolve

    return StateTaskServiceSageMaker


def _adapt_sagemaker_processing_sync() -> None:
    """moto 5.2.5 has no SageMaker integration ("Unsupported sync callback procedure" for
    sagemaker:createProcessingJob.sync). Add it: CreateProcessingJob, then DescribeProcessingJob
    until the job ends; Completed is the task's output (PascalCase, timestamps in epoch ms),
    Failed or Stopped is States.TaskFailed with the description as Cause; a stopped execution
    stops the job."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory

    original = state_task_factory.state_task_service_for
    sagemaker_task = _sagemaker_task_class()

    def state_task_service_for(service_name: str) -> Any:
        return sagemaker_task() if service_name == "sagemaker" else original(service_name)

    _replace(state_task_factory, "state_task_service_for", state_task_service_for)


GLUE_FAILED = ("FAILED", "TIMEOUT", "ERROR", "STOPPED", "EXPIRED")
GLUE_ENDED = ("SUCCEEDED", *GLUE_FAILED)


def _adapt_glue_sync() -> None:
    """moto 5.2.5's glue:startJobRun.sync treats a STOPPED run as a success and puts timestamps in
    the Cause as ISO text. Poll GetJobRun as AWS does: SUCCEEDED is the output, any other end
    (FAILED, TIMEOUT, ERROR, STOPPED) is States.TaskFailed with the JobRun (JobRunState, epoch ms)
    as Cause; a stopped execution stops the run (BatchStopJobRun)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_glue import (
        StateTaskServiceGlue,
    )

    def sync_to_start_job_run(
        self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
    ) -> Callable[[], Any]:
        started = env.stack.pop()
        job_name, run_id = started["JobName"], started["JobRunId"]
        glue = self._get_glue_client(resource_runtime_part=resource_runtime_part, state_credentials=state_credentials)

        def resolve() -> Any:
            run = epoch_ms(glue.get_job_run(JobName=job_name, RunId=run_id)["JobRun"])
            run["JobName"] = job_name
            if run["JobRunState"] not in GLUE_ENDED:
                return None
            if run["JobRunState"] == "SUCCEEDED":
                return run
            raise _task_failed(env, self, run)

        def abandon() -> None:
            glue.batch_stop_job_run(JobName=job_name, JobRunIds=[run_id])

        resolve.abandon = abandon  # type: ignore[attr-defined]
        return resolve

    _replace(StateTaskServiceGlue, "_sync_to_start_job_run", sync_to_start_job_run)


def _sdk_operation(task: Any, boto_service_name: str | None, service_action_name: str | None) -> OperationModel:
    return _operation(task._get_boto_service_name(boto_service_name), service_action_name or task.resource.api_action)


def _adapt_aws_sdk_integrations() -> None:
    """AWS SDK integrations (aws-sdk:batch:submitServiceJob, ...) take PascalCase parameters and
    return PascalCase output whatever the service's own casing; moto 5.2.5 passes the names
    through (boto3 then rejects `JobName=` for Batch) and returns camelCase. Translate with
    botocore's shapes, as AWS does. Errors are named `<Service>.<Exception>` in PascalCase: moto
    knows DynamoDb and Sfn only, so Batch errors came out as `batch.ClientException`."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_aws_sdk
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    def normalise_parameters(
        self: Any, parameters: dict, boto_service_name: str | None = None, service_action_name: str | None = None
    ) -> None:
        operation = _operation(
            self._get_boto_service_name(boto_service_name), service_action_name or self.resource.api_action
        )
        self._to_boto_request(parameters, operation.input_shape)

    def normalise_response(
        self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None
    ) -> None:
        operation = _operation(
            self._get_boto_service_name(boto_service_name), service_action_name or self.resource.api_action
        )
        if operation.output_shape is not None:
            self._from_boto_response(response, operation.output_shape)

    _replace(StateTaskServiceAwsSdk, "_normalise_parameters", normalise_parameters)
    _replace(StateTaskServiceAwsSdk, "_normalise_response", normalise_response)
    names = dict(state_task_service_aws_sdk._SERVICE_ERROR_NAMES)
    names.update({"batch": "Batch", "sagemaker": "SageMaker", "glue": "Glue", "s3": "S3", "sqs": "Sqs"})
    _replace(state_task_service_aws_sdk, "_SERVICE_ERROR_NAMES", names)


# -------------------------------------------------------------------- Batch service jobs
SERVICE_PAYLOAD_LIMIT = 10 * 1024
SERVICE_JOB_TYPES = ("SAGEMAKER_TRAINING",)
SERVICE_ENDED = ("SUCCEEDED", "FAILED")
_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class ServiceEnvironment:
    name: str
    arn: str
    type: str
    state: str
    capacity_limits: list[dict[str, Any]]
    tags: dict[str, str]

    def describe(self) -> dict[str, Any]:
        return {
            "serviceEnvironmentName": self.name,
            "serviceEnvironmentArn": self.arn,
            "serviceEnvironmentType": self.type,
            "state": self.state,
            "status": "VALID",
            "capacityLimits": self.capacity_limits,
            "tags": self.tags,
        }


@dataclass
class ServiceJob:
    """One SubmitServiceJob. The local stand-in moves `status` and fills the attempt fields."""

    account_id: str
    region: str
    name: str
    queue_arn: str
    service_job_type: str
    payload: str
    retry_strategy: dict[str, Any]
    timeout_config: dict[str, Any]
    scheduling_priority: int | None
    share_identifier: str | None
    tags: dict[str, str]
    client_token: str | None
    job_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "SUBMITTED"
    status_reason: str | None = "Submitted by user"
    created_at: int = field(default_factory=_now_ms)
    scheduled_at: int | None = None
    started_at: int | None = None
    stopped_at: int | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    is_terminated: bool = False
    terminate_reason: str | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:batch:{self.region}:{self.account_id}:service-job/{self.job_id}"

    def signature(self) -> tuple[Any, ...]:
        """What must match for a repeated clientToken to name the same job."""
        return (
            self.name,
            self.queue_arn,
            self.service_job_type,
            self.payload,
            json.dumps(self.retry_strategy, sort_keys=True),
            json.dumps(self.timeout_config, sort_keys=True),
            self.scheduling_priority,
            self.share_identifier,
            json.dumps(self.tags, sort_keys=True),
        )

    def describe(self) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "attempts": self.attempts,
            "createdAt": self.created_at,
            "isTerminated": self.is_terminated,
            "jobArn": self.arn,
            "jobId": self.job_id,
            "jobName": self.name,
            "jobQueue": self.queue_arn,
            "retryStrategy": self.retry_strategy,
            "serviceRequestPayload": self.payload,
            "serviceJobType": self.service_job_type,
            "status": self.status,
            "tags": self.tags,
            "timeoutConfig": self.timeout_config,
        }
        if self.attempts:
            detail["latestAttempt"] = {"serviceResourceId": self.attempts[-1].get("serviceResourceId")}
        optional = {
            "scheduledAt": self.scheduled_at,
            "schedulingPriority": self.scheduling_priority,
            "shareIdentifier": self.share_identifier,
            "startedAt": self.started_at,
            "statusReason": self.status_reason,
            "stoppedAt": self.stopped_at,
        }
        detail.update({k: v for k, v in optional.items() if v is not None})
        return detail

    def summary(self) -> dict[str, Any]:
        described = self.describe()
        keep = ("createdAt", "jobArn", "jobId", "jobName", "serviceJobType", "shareIdentifier", "status")
        summary = {k: described[k] for k in keep if k in described}
        summary.update(
            {k: described[k] for k in ("statusReason", "startedAt", "stoppedAt", "latestAttempt") if k in described}
        )
        return summary

    def finish(self, status: str, reason: str) -> None:
        """End the job (and its open attempt) now."""
        now = _now_ms()
        if self.attempts and "stoppedAt" not in self.attempts[-1]:
            self.attempts[-1].update(stoppedAt=now, statusReason=reason)
        self.status, self.status_reason, self.stopped_at = status, reason, now


class _ServiceState:
    def __init__(self) -> None:
        self.environments: dict[str, ServiceEnvironment] = {}
        self.jobs: dict[str, ServiceJob] = {}
        self.tokens: dict[str, str] = {}
        self.lock = threading.Lock()


def _batch_backend(account_id: str, region: str) -> Any:
    from moto.batch.models import batch_backends

    return batch_backends[account_id][region]


def service_state(account_id: str, region: str) -> _ServiceState:
    """Service environments and service jobs of one account and region (reset with moto's backend)."""
    backend = _batch_backend(account_id, region)
    state = backend.__dict__.get("_jobline_service")
    if state is None:
        state = backend.__dict__.setdefault("_jobline_service", _ServiceState())
    return state


def _client_error(message: str) -> Exception:
    from moto.batch.exceptions import ClientException

    return ClientException(message)


def _service_queue(backend: Any, identifier: str) -> Any:
    queue = backend.get_job_queue(identifier)
    if queue is None:
        raise _client_error(f"Job queue {identifier} does not exist")
    return queue


def submit_service_job(account_id: str, region: str, params: dict[str, Any]) -> ServiceJob:
    backend = _batch_backend(account_id, region)
    state = service_state(account_id, region)
    for required in ("jobName", "jobQueue", "serviceJobType", "serviceRequestPayload"):
        if not params.get(required):
            raise _client_error(f"{required} must be provided")
    name = params["jobName"]
    if not _JOB_NAME.match(name):
        raise _client_error(
            "jobName: up to 128 letters (uppercase and lowercase), numbers, hyphens and underscores,"
            " starting with a letter or number"
        )
    queue = _service_queue(backend, params["jobQueue"])
    queue_type = getattr(queue, "jobline_queue_type", "ECS")
    if queue_type != params["serviceJobType"] or params["serviceJobType"] not in SERVICE_JOB_TYPES:
        raise _client_error(
            f"serviceJobType {params['serviceJobType']} does not match job queue {queue.name} of type {queue_type}"
        )
    if queue.state != "ENABLED":
        raise _client_error(f"Job queue {queue.name} is not ENABLED")
    payload = params["serviceRequestPayload"]
    size = len(payload.encode())
    if size > SERVICE_PAYLOAD_LIMIT:
        raise _client_error(
            f"serviceRequestPayload is {size} bytes; the maximum is {SERVICE_PAYLOAD_LIMIT} bytes (10 KiB)"
        )
    try:
        if not isinstance(json.loads(payload), dict):
            raise ValueError
    except ValueError:
        raise _client_error("serviceRequestPayload must be a JSON object (a CreateTrainingJob request)") from None
    retry = params.get("retryStrategy") or {"attempts": 1}
    if not 1 <= int(retry.get("attempts", 1)) <= 10:
        raise _client_error("retryStrategy.attempts must be between 1 and 10")
    timeout = params.get("timeoutConfig") or {}
    if "attemptDurationSeconds" in timeout and int(timeout["attemptDurationSeconds"]) < 60:
        raise _client_error("timeoutConfig.attemptDurationSeconds must be at least 60")
    share = params.get("shareIdentifier")
    if queue.schedule_policy and not share:
        raise _client_error(f"Job queue {queue.name} has a fair share scheduling policy: shareIdentifier is required")
    if share and not queue.schedule_policy:
        raise _client_error(
            f"shareIdentifier is only for job queues with a fair share scheduling policy ({queue.name})"
        )
    priority = params.get("schedulingPriority")
    if priority is not None and not 0 <= int(priority) <= 9999:
        raise _client_error("schedulingPriority must be between 0 and 9999")
    tags = params.get("tags") or {}
    if len(tags) > 50:
        raise _client_error("at most 50 tags")
    job = ServiceJob(
        account_id=account_id,
        region=region,
        name=name,
        queue_arn=queue.arn,
        service_job_type=params["serviceJobType"],
        payload=payload,
        retry_strategy={
            "attempts": int(retry.get("attempts", 1)),
            **{k: v for k, v in retry.items() if k != "attempts"},
        },
        timeout_config=timeout,
        scheduling_priority=None if priority is None else int(priority),
        share_identifier=share,
        tags=tags,
        client_token=params.get("clientToken"),
    )
    with state.lock:
        if job.client_token is not None and job.client_token in state.tokens:
            earlier = state.jobs[state.tokens[job.client_token]]
            if earlier.signature() != job.signature():
                raise _client_error(
                    f"clientToken {job.client_token} was already used for job {earlier.job_id} with other parameters"
                )
            return earlier
        state.jobs[job.job_id] = job
        if job.client_token is not None:
            state.tokens[job.client_token] = job.job_id
    if tags:
        backend.tag_resource(job.arn, tags)
    run = hooks["service_job"]
    if run is not None:
        run(job)
    return job


def get_service_job(account_id: str, region: str, job_id: str) -> ServiceJob:
    job = service_state(account_id, region).jobs.get(job_id or "")
    if job is None:
        raise _client_error(f"Service job {job_id} does not exist")
    return job


def terminate_service_job(account_id: str, region: str, job_id: str, reason: str) -> None:
    if not reason:
        raise _client_error("reason must be provided")
    job = get_service_job(account_id, region, job_id)
    if job.status in SERVICE_ENDED:
        return
    job.is_terminated = True
    job.terminate_reason = reason
    if hooks["service_job"] is None:
        job.finish("FAILED", reason)


def _adapt_batch_service_jobs() -> None:
    """moto 5.2.5 has no Batch service jobs: no service environments, no SAGEMAKER_TRAINING job
    queues, no SubmitServiceJob / DescribeServiceJob / ListServiceJobs / TerminateServiceJob.
    Add them to its Batch backend and HTTP routes (in-process and server mode) with AWS's shapes:
    clientToken idempotency, the 10 KiB serviceRequestPayload quota, queue type checks."""
    from moto.batch import urls
    from moto.batch.models import JobQueue
    from moto.batch.responses import BatchResponse

    def body(self: Any) -> dict[str, Any]:
        return json.loads(self.body or "{}")

    def createserviceenvironment(self: Any) -> str:
        params = body(self)
        state = service_state(self.current_account, self.region)
        name = params.get("serviceEnvironmentName")
        kind = params.get("serviceEnvironmentType")
        if not name or kind not in SERVICE_JOB_TYPES:
            raise _client_error("serviceEnvironmentName and serviceEnvironmentType SAGEMAKER_TRAINING are required")
        limits = params.get("capacityLimits") or []
        if not limits or any(int(limit.get("maxCapacity", 0)) < 1 for limit in limits):
            raise _client_error("capacityLimits: at least one limit with maxCapacity >= 1 is required")
        arn = f"arn:aws:batch:{self.region}:{self.current_account}:service-environment/{name}"
        with state.lock:
            if arn in state.environments:
                raise _client_error(f"Service environment {name} already exists")
            state.environments[arn] = ServiceEnvironment(
                name, arn, kind, params.get("state", "ENABLED"), limits, params.get("tags") or {}
            )
        return json.dumps({"serviceEnvironmentName": name, "serviceEnvironmentArn": arn})

    def _environment(state: _ServiceState, identifier: str) -> ServiceEnvironment:
        for environment in state.environments.values():
            if identifier in (environment.arn, environment.name):
                return environment
        raise _client_error(f"Service environment {identifier} does not exist")

    def describeserviceenvironments(self: Any) -> str:
        state = service_state(self.current_account, self.region)
        wanted = body(self).get("serviceEnvironments") or []
        found = [e for e in state.environments.values() if not wanted or e.arn in wanted or e.name in wanted]
        return json.dumps({"serviceEnvironments": [e.describe() for e in found]})

    def updateserviceenvironment(self: Any) -> str:
        params = body(self)
        environment = _environment(
            service_state(self.current_account, self.region), params.get("serviceEnvironment", "")
        )
        if "state" in params:
            environment.state = params["state"]
        if "capacityLimits" in params:
            environment.capacity_limits = params["capacityLimits"]
        return json.dumps({"serviceEnvironmentName": environment.name, "serviceEnvironmentArn": environment.arn})

    def deleteserviceenvironment(self: Any) -> str:
        state = service_state(self.current_account, self.region)
        environment = _environment(state, body(self).get("serviceEnvironment", ""))
        with state.lock:
            state.environments.pop(environment.arn, None)
        return ""

    original_createjobqueue = BatchResponse.createjobqueue

    def createjobqueue(self: Any) -> str:
        params = body(self)
        queue_type = params.get("jobQueueType", "ECS")
        if queue_type not in SERVICE_JOB_TYPES:
            if params.get("serviceEnvironmentOrder"):
                raise _client_error("serviceEnvironmentOrder is only for service job queues (jobQueueType)")
            return original_createjobqueue(self)
        backend = _batch_backend(self.current_account, self.region)
        state = service_state(self.current_account, self.region)
        order = params.get("serviceEnvironmentOrder") or []
        if params.get("computeEnvironmentOrder"):
            raise _client_error(f"a {queue_type} job queue takes serviceEnvironmentOrder, not computeEnvironmentOrder")
        if not order:
            raise _client_error("serviceEnvironmentOrder must have at least one service environment")
        for item in order:
            environment = _environment(state, item.get("serviceEnvironment", ""))
            if environment.type != queue_type:
                raise _client_error(f"service environment {environment.name} is not of type {queue_type}")
            item["serviceEnvironment"] = environment.arn
        name = params.get("jobQueueName")
        if not name or params.get("priority") is None:
            raise _client_error("jobQueueName and priority must be provided")
        if backend.get_job_queue_by_name(name) is not None:
            raise _client_error(f"Job queue {name} already exists")
        queue = JobQueue(
            name,
            params["priority"],
            params.get("state", "ENABLED"),
            [],
            [],
            schedule_policy=params.get("schedulingPolicyArn"),
            backend=backend,
            tags=params.get("tags"),
        )
        queue.jobline_queue_type = queue_type
        queue.jobline_service_order = order
        backend._job_queues[queue.arn] = queue
        return json.dumps({"jobQueueArn": queue.arn, "jobQueueName": queue.name})

    original_describe = JobQueue.describe

    def describe_queue(self: Any) -> dict[str, Any]:
        described = original_describe(self)
        if getattr(self, "jobline_queue_type", None):
            described.update(jobQueueType=self.jobline_queue_type, serviceEnvironmentOrder=self.jobline_service_order)
        return described

    original_submitjob = BatchResponse.submitjob

    def submitjob(self: Any) -> str:
        queue = _batch_backend(self.current_account, self.region).get_job_queue(body(self).get("jobQueue", ""))
        if queue is not None and getattr(queue, "jobline_queue_type", None):
            raise _client_error(f"Job queue {queue.name} is a {queue.jobline_queue_type} queue: use SubmitServiceJob")
        return original_submitjob(self)

    def submitservicejob(self: Any) -> str:
        job = submit_service_job(self.current_account, self.region, body(self))
        return json.dumps({"jobArn": job.arn, "jobName": job.name, "jobId": job.job_id})

    def describeservicejob(self: Any) -> str:
        return json.dumps(get_service_job(self.current_account, self.region, body(self).get("jobId", "")).describe())

    def terminateservicejob(self: Any) -> str:
        params = body(self)
        terminate_service_job(self.current_account, self.region, params.get("jobId", ""), params.get("reason", ""))
        return "{}"

    def listservicejobs(self: Any) -> str:
        params = body(self)
        state = service_state(self.current_account, self.region)
        backend = _batch_backend(self.current_account, self.region)
        queue = _service_queue(backend, params["jobQueue"]) if params.get("jobQueue") else None
        status = params.get("jobStatus")
        jobs = [
            j
            for j in list(state.jobs.values())
            if (queue is None or j.queue_arn == queue.arn) and (status is None or j.status == status)
        ]
        jobs.sort(key=lambda j: j.created_at, reverse=True)
        start = int(params.get("nextToken") or 0)
        size = int(params.get("maxResults") or 100)
        page = jobs[start : start + size]
        result: dict[str, Any] = {"jobSummaryList": [j.summary() for j in page]}
        if start + size < len(jobs):
            result["nextToken"] = str(start + size)
        return json.dumps(result)

    for handler in (
        createserviceenvironment,
        describeserviceenvironments,
        updateserviceenvironment,
        deleteserviceenvironment,
        submitservicejob,
        describeservicejob,
        terminateservicejob,
        listservicejobs,
    ):
        _add(BatchResponse, handler.__name__, handler)
        urls.url_paths["{0}/v1/" + handler.__name__ + "$"] = BatchResponse.dispatch
    _replace(BatchResponse, "createjobqueue", createjobqueue)
    _replace(BatchResponse, "submitjob", submitjob)
    _replace(JobQueue, "describe", describe_queue)


# -------------------------------------------------------------------- SageMaker processing jobs
_PROCESSING_FIELDS = (
    "ProcessingInputs",
    "ProcessingOutputConfig",
    "ProcessingJobName",
    "ProcessingResources",
    "StoppingCondition",
    "AppSpecification",
    "Environment",
    "NetworkConfig",
    "RoleArn",
    "ExperimentConfig",
    "ProcessingJobArn",
    "ProcessingJobStatus",
    "ExitMessage",
    "FailureReason",
    "ProcessingEndTime",
    "ProcessingStartTime",
    "LastModifiedTime",
    "CreationTime",
)


def describe_processing_job(job: Any) -> dict[str, Any]:
    """DescribeProcessingJob's answer, with AWS's members only."""
    values = {
        "ProcessingInputs": job.processing_inputs,
        "ProcessingOutputConfig": job.processing_output_config,
        "ProcessingJobName": job.processing_job_name,
        "ProcessingResources": getattr(job, "processing_resources", None),
        "StoppingCondition": job.stopping_condition,
        "AppSpecification": job.app_specification,
        "Environment": getattr(job, "environment", None),
        "NetworkConfig": job.network_config,
        "RoleArn": job.role_arn,
        "ExperimentConfig": job.experiment_config,
        "ProcessingJobArn": job.arn,
        "ProcessingJobStatus": job.processing_job_status,
        "ExitMessage": getattr(job, "exit_message", None),
        "FailureReason": getattr(job, "failure_reason", None),
        "ProcessingEndTime": job.processing_end_time,
        "ProcessingStartTime": getattr(job, "processing_start_time", None),
        "LastModifiedTime": job.last_modified_time,
        "CreationTime": job.creation_time,
    }
    return {k: values[k] for k in _PROCESSING_FIELDS if values[k] not in (None, [None])}


def _adapt_sagemaker_processing_jobs() -> None:
    """moto 5.2.5's CreateProcessingJob drops Environment and ProcessingResources, accepts a name
    already taken, and makes the job Completed at once; DescribeProcessingJob returns moto's own
    attribute names. Keep the whole request, refuse a taken name, describe with AWS's members,
    and hand the job (InProgress) to the `processing_job` hook: StopProcessingJob then asks it
    to stop (Stopping) instead of ending it on the spot."""
    from moto.core.utils import utcnow
    from moto.sagemaker.exceptions import ResourceInUseException, ValidationError
    from moto.sagemaker.models import FakeProcessingJob, SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    def create_processing_job(self: Any) -> Any:
        from moto.core.responses import ActionResult

        backend = self.sagemaker_backend
        name = self._get_param("ProcessingJobName")
        if name in backend.processing_jobs:
            raise ResourceInUseException(
                message=f"Job name must be unique within an AWS account and region, and a job with this name"
                f" already exists ({backend.processing_jobs[name].arn})"
            )
        job = backend.create_processing_job(
            app_specification=self._get_param("AppSpecification"),
            experiment_config=self._get_param("ExperimentConfig"),
            network_config=self._get_param("NetworkConfig"),
            processing_inputs=self._get_param("ProcessingInputs"),
            processing_job_name=name,
            processing_output_config=self._get_param("ProcessingOutputConfig"),
            role_arn=self._get_param("RoleArn"),
            stopping_condition=self._get_param("StoppingCondition"),
            tags=self._get_param("Tags"),
        )
        job.environment = self._get_param("Environment")
        job.processing_resources = self._get_param("ProcessingResources")
        run = hooks["processing_job"]
        if run is not None:
            job.processing_job_status = "InProgress"
            job.processing_end_time = None
            run(job)
        return ActionResult({"ProcessingJobArn": job.arn})

    def response_object(self: Any) -> dict[str, Any]:
        return describe_processing_job(self)

    def stop_processing_job(self: Any, processing_job_name: str) -> None:
        job = self.processing_jobs.get(processing_job_name)
        if job is None:
            arn = FakeProcessingJob.arn_formatter(processing_job_name, self.account_id, self.region_name)
            raise ValidationError(message=f"Could not find processing job '{arn}'.")
        if job.processing_job_status != "InProgress":
            raise ValidationError(
                message=f"The request was rejected because the processing job is in status {job.processing_job_status}."
            )
        job.processing_job_status = "Stopping" if hooks["processing_job"] is not None else "Stopped"
        job.last_modified_time = utcnow()
        if job.processing_job_status == "Stopped":
            job.processing_end_time = job.last_modified_time

    _replace(SageMakerResponse, "create_processing_job", create_processing_job)
    _replace(FakeProcessingJob, "response_object", property(response_object))
    _replace(SageMakerModelBackend, "stop_processing_job", stop_processing_job)


# -------------------------------------------------------------------- Glue job runs
GLUE_ACTIVE = ("WAITING", "STARTING", "RUNNING", "STOPPING")


def _adapt_glue_job_runs() -> None:
    """moto 5.2.5's Glue job runs: StartJobRun drops ExecutionClass, MaxConcurrentRuns counts only
    STARTING and RUNNING runs, there is no BatchStopJobRun, and a run advances by itself on every
    GetJobRun. Keep ExecutionClass, count every unfinished run, add BatchStopJobRun (its
    SuccessfulSubmissions / Errors shape), and hand new runs to the `glue_job_run` hook, after
    which only the hook moves them (ErrorMessage, CompletedOn and ExecutionTime as AWS reports)."""
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.glue.exceptions import ConcurrentRunsExceededException
    from moto.glue.models import FakeJob, FakeJobRun, GlueBackend
    from moto.glue.responses import GlueResponse

    original_start = FakeJob.start_job_run

    def start_job_run(self: Any, *args: Any, **kwargs: Any) -> str:
        active = [run for run in self.job_runs if run.status in GLUE_ACTIVE]
        if len(active) >= int(self.execution_property.get("MaxConcurrentRuns", 1)):
            raise ConcurrentRunsExceededException(f"Concurrent runs exceeded for {self.name}")
        return original_start(self, *args, **kwargs)

    original_response = GlueResponse.start_job_run

    def start_job_run_response(self: Any) -> Any:
        result = original_response(self)
        job = self.glue_backend.get_job(self._get_param("JobName"))
        run = job.job_runs[-1]
        run.execution_class = self._get_param("ExecutionClass") or job.execution_class
        run.error_message = None
        hook = hooks["glue_job_run"]
        if hook is not None:
            run._transitions = []  # nothing but the hook moves it now
            run.completed_on = None
            run.jobline_managed = True
            hook(job, run)
        return result

    original_as_dict = FakeJobRun.as_dict

    def as_dict(self: Any) -> dict[str, Any]:
        described = original_as_dict(self)
        if getattr(self, "execution_class", None):
            described["ExecutionClass"] = self.execution_class
        if getattr(self, "jobline_managed", False):
            if self.completed_on is None:
                described.pop("CompletedOn", None)
            end = self.completed_on or utcnow()
            described["ExecutionTime"] = max(0, int((end - self.started_on).total_seconds()))
            if self.error_message:
                described["ErrorMessage"] = self.error_message
        return described

    def batch_stop_job_run(self: Any, job_name: str, run_ids: list[str]) -> dict[str, Any]:
        job = self.get_job(job_name)
        stopped, errors = [], []
        for run_id in run_ids:
            run = next((r for r in job.job_runs if r.job_run_id == run_id), None)
            if run is None:
                code, message = "EntityNotFoundException", f"Job run {run_id} not found."
            elif run.status not in GLUE_ACTIVE:
                code, message = "InvalidInputException", f"Job run {run_id} is {run.status} and cannot be stopped."
            else:
                if run.status != "STOPPING":
                    run.status = "STOPPING"
                    if not getattr(run, "jobline_managed", False):
                        run.status = "STOPPED"
                        run.completed_on = utcnow()
                stopped.append({"JobName": job_name, "JobRunId": run_id})
                continue
            errors.append(
                {"JobName": job_name, "JobRunId": run_id, "ErrorDetail": {"ErrorCode": code, "ErrorMessage": message}}
            )
        return {"SuccessfulSubmissions": stopped, "Errors": errors}

    def batch_stop_job_run_response(self: Any) -> Any:
        return ActionResult(
            self.glue_backend.batch_stop_job_run(self._get_param("JobName"), self._get_param("JobRunIds") or [])
        )

    _replace(FakeJob, "start_job_run", start_job_run)
    _replace(GlueResponse, "start_job_run", start_job_run_response)
    _replace(FakeJobRun, "as_dict", as_dict)
    _add(GlueBackend, "batch_stop_job_run", batch_stop_job_run)
    _add(GlueResponse, "batch_stop_job_run", batch_stop_job_run_response)


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
    _adapt_keyword_path_fields,
    _adapt_sync_without_callback,
    _adapt_sagemaker_processing_sync,
    _adapt_glue_sync,
    _adapt_aws_sdk_integrations,
    _adapt_batch_service_jobs,
    _adapt_sagemaker_processing_jobs,
    _adapt_glue_job_runs,
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
