"""Adaptations of moto's Step Functions engine itself (the ASL parser and evaluator, and how it
waits on `.sync` tasks), for correctness and for speed. Its service integrations are in
stepfunctions_integrations."""

from __future__ import annotations

import json
from typing import Any

from jobline_local.adaptations.hooks import hooks
from jobline_local.adaptations.patching import originals, replace

# definition -> (program, parse tree): what AmazonStateLanguageParser.parse returns for it.
_parsed: dict[str, tuple[Any, Any]] = {}


def forget_parsed() -> None:
    """Drop the cached programs (a test that changes how moto builds them)."""
    _parsed.clear()


def adapt_asl_parse_cache() -> None:
    """moto 5.2.5 parses a state machine's definition with its ANTLR grammar and builds its program
    (the evaluation components) at every execution start: about 0.25 s of CPU for jobline's old
    definition, then 13% of the local stack's time for rebuilding the program from a cached tree.
    Keep both per definition. The components hold no execution's state (moto keeps that in each
    execution's Environment: its stack, heap and context object), so executions share them."""
    import threading

    from antlr4 import CommonTokenStream, InputStream
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLLexer import ASLLexer
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser
    from moto.stepfunctions.parser.asl.parse import asl_parser
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    lock = threading.Lock()
    original = asl_parser.AmazonStateLanguageParser.parse

    def parse(definition: str) -> tuple[Any, Any]:
        with lock:
            parsed = _parsed.get(definition)
        if parsed is None:
            listener = asl_parser.SyntaxErrorListener()
            parser = ASLParser(CommonTokenStream(ASLLexer(InputStream(definition))))
            parser.removeErrorListeners()
            parser.addErrorListener(listener)
            tree = parser.state_machine()
            if listener.errors:
                raise asl_parser.ASLParserException(errors=listener.errors)
            parsed = (Preprocessor().visit(tree), tree)
            with lock:
                if len(_parsed) >= 32:
                    _parsed.pop(next(iter(_parsed)))
                _parsed[definition] = parsed
        return parsed

    originals.setdefault((asl_parser.AmazonStateLanguageParser, "parse"), original)
    asl_parser.AmazonStateLanguageParser.parse = staticmethod(parse)


def adapt_json_path_cache() -> None:
    """moto 5.2.5 builds a new JSONPath parser (jsonpath_ng's PLY lexer and grammar) for every path
    it evaluates: InputPath, Parameters' `.$` fields, ResultPath, OutputPath, several per state
    (6% of the local stack's time). A parsed path is immutable: keep one per path text."""
    from functools import lru_cache

    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    for module in (json_path, result_path):
        replace(module, "parse", lru_cache(maxsize=4096)(module.parse))


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


def adapt_engine_client_cache() -> None:
    """moto 5.2.5's Step Functions engine builds a new boto3 client for every task it runs (tens of
    milliseconds of CPU each, several per run). Reuse one client per service and region (boto3
    clients are thread-safe). moto's clients ignore the task's credentials (they always sign with
    the same test keys), so a task with a role shares the client too."""
    import importlib
    import threading

    from moto.stepfunctions.parser.asl.utils import boto_client

    original = boto_client.boto_client_for
    cache: dict[tuple[str, str, bool, str], Any] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
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
            replace(module, "boto_client_for", boto_client_for)


def adapt_keyword_path_fields() -> None:
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

    replace(Preprocessor, "visitPayload_binding_value", visit_payload_binding_value)


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


# `.sync` polls: the first after half a second (moto's fixed period), each next one 1.5 times later,
# at most every 5 s. AWS does not document its period; it learns of a Batch job's end from
# events and polls as a fallback, so a job's end shows within seconds, not at a poll per 0.5 s.
SYNC_POLL_FIRST, SYNC_POLL_GROWTH, SYNC_POLL_MAX = 0.5, 1.5, 5.0


def sync_poll_delays() -> Any:
    delay = SYNC_POLL_FIRST
    while True:
        yield delay
        delay = min(delay * SYNC_POLL_GROWTH, SYNC_POLL_MAX)


def adapt_sync_poll_backoff() -> None:
    """moto 5.2.5 polls every `.sync` task's job every 0.5 s for as long as it runs (a bench of runs
    queued for the local compute made 37 DescribeJobs per run). Poll with a growing period
    (sync_poll_delays), waking at once when the execution stops."""
    import threading

    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.utils import TMP_THREADS

    from jobline_local.adaptations.stepfunctions_callbacks import TaskAbandoned

    def eval_sync(
        self: Any, env: Any, sync_resolver: Any, timeout_seconds: Any, callback_endpoint: Any, heartbeat_endpoint: Any
    ) -> Any:
        # moto's _eval_sync: a callback answer (SendTaskSuccess/Failure) may also end the task.
        answered: list[Any] = []
        if callback_endpoint is not None:

            def wait_for_answer() -> None:
                try:
                    outcome = self._eval_wait_for_task_token(
                        env=env,
                        timeout_seconds=timeout_seconds,
                        callback_endpoint=callback_endpoint,
                        heartbeat_endpoint=heartbeat_endpoint,
                    )
                except TaskAbandoned:
                    return
                answered.append(outcome)

            thread = threading.Thread(target=wait_for_answer, name="WaitForTaskToken_SyncTask", daemon=True)
            TMP_THREADS.append(thread)
            thread.start()
        result = None
        for delay in sync_poll_delays():
            if not env.is_running():
                break
            result = sync_resolver()
            if answered or result:
                break
            _wait(env, delay)
        return (answered[0] if answered else None) or result

    replace(StateTaskServiceCallback, "_eval_sync", eval_sync)


def adapt_sync_without_callback() -> None:
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

    replace(StateTaskServiceCallback, "_eval_integration_pattern", _fixed_eval_integration_pattern)
    replace(StateTaskServiceCallback, "_eval_sync", eval_sync)


def adapt_program_thread() -> None:
    """moto 5.2.5 runs each execution's program in a thread of its own, which the execution's worker
    thread only joins, with the program's TimeoutSeconds: one idle thread more per execution. A
    program without TimeoutSeconds (jobline's) runs in the worker's thread, so an execution waiting
    in a Task with a timeout holds 2 threads, not 3: a 10,000-run burst keeps that many waiting.
    Size only; an error escaping the program is logged, as moto's thread left it."""
    import logging

    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
    from moto.stepfunctions.parser.asl.component.program.program import Program

    program_eval = Program.eval

    def eval_program(self: Any, env: Any) -> None:
        if self.timeout_seconds and self.timeout_seconds.timeout_seconds:
            program_eval(self, env)
            return
        env.next_state_name = self.start_at.start_at_name
        try:
            EvalComponent.eval(self, env)
        except Exception:
            logging.getLogger(__name__).exception("execution program failed")

    replace(Program, "eval", eval_program)


def engine_seconds(seconds: float) -> float:
    """Real seconds for `seconds` of the local clock (the stack's `--clock-speed`)."""
    scale = hooks["engine_seconds"]
    return float(seconds) if scale is None else scale(seconds)


def adapt_engine_clock() -> None:
    """moto 5.2.5's Retry sleeps `IntervalSeconds x BackoffRate^n` (capped by MaxDelaySeconds, with
    its jitter) in real seconds, and a Wait state waits its Seconds in real seconds: the local
    clock speed (`--clock-speed`, as schedules and Lambda's retries use it) did not reach them.
    Both wait `engine_seconds` of the delay moto computed. The retry wait also ends when the
    execution stops (moto's `time.sleep` held a stopped execution RUNNING until it ended), as a
    Wait state's already does. A Wait state's Timestamp is a real instant, not scaled."""
    from moto.stepfunctions.parser.asl.component.common.retry.max_attempts_decl import MaxAttemptsOutcome
    from moto.stepfunctions.parser.asl.component.common.retry.retrier_decl import RetrierDecl
    from moto.stepfunctions.parser.asl.component.common.retry.retrier_outcome import RetrierOutcome
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import Timestamp
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    def retrier_body(self: Any, env: Any) -> None:
        # moto's RetrierDecl._eval_body, waiting on the local clock instead of time.sleep.
        self.error_equals.eval(env)
        if not env.stack.pop():
            env.stack.append(RetrierOutcome.Skipped)
            return
        self.max_attempts.eval(env=env)
        if env.stack.pop() == MaxAttemptsOutcome.EXHAUSTED:
            env.stack.append(RetrierOutcome.Failed)
            return
        for part in (self.interval_seconds, self.backoff_rate, self.max_delay_seconds, self.jitter_strategy):
            part.eval(env=env)
        _wait(env, engine_seconds(env.stack.pop()))
        env.stack.append(RetrierOutcome.Executed)

    def wait_body(self: Any, env: Any) -> None:
        seconds = self._get_wait_seconds(env=env)
        _wait(env, seconds if isinstance(self, Timestamp) else engine_seconds(seconds))

    replace(RetrierDecl, "_eval_body", retrier_body)
    replace(WaitFunction, "_eval_body", wait_body)


def _wait(env: Any, seconds: float) -> None:
    """Wait `seconds`, or less if the execution leaves the running state (stopped, timed out)."""
    import time

    deadline = time.monotonic() + seconds
    while env.is_running() and (left := deadline - time.monotonic()) > 0:
        env.program_state_event.wait(left)
