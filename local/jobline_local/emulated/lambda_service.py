"""Local Lambda: each function runs in warm worker processes with its template environment, and
is invoked as Lambda invokes it: synchronously (Invoke, SQS event source mappings) or
asynchronously (EventBridge rule targets, EventBridge Scheduler) with Lambda's retries and
on-failure destinations.

moto keeps the Lambda API; its Invoke is routed here (the adaptation below), as are
EventBridge rules' Lambda targets (adaptations.delivery)."""

from __future__ import annotations

import base64
import json
import logging
import os
import queue
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobline_local.activity import Activity
from jobline_local.adaptations.hooks import hooks
from jobline_local.adaptations.patching import replace
from jobline_local.deploy.deployment import Deployment, FunctionSpec
from jobline_local.emulated.lambda_workers import FunctionPool, FunctionTimeout, InvokeResult, Worker, WorkerDied

# Lambda's async invocation retries: about 1 minute, then about 2 minutes (divided by the clock speed).
ASYNC_RETRY_DELAYS = (60, 120)


def adapt_lambda_invoke() -> None:
    """Without Docker, moto 5.2.5's Invoke runs no code (it fails, or echoes the payload). Route
    Invoke to the `lambda_invoke` hook (the local Lambda service) so `aws lambda invoke` and
    Step Functions' lambda:invoke run the real handler, with Lambda's response headers."""

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

    replace(LambdaFunction, "invoke", invoke)


@dataclass
class AsyncEvent:
    payload: Any
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    received: float = field(default_factory=time.time)
    attempts: int = 0


class LambdaService:
    def __init__(
        self,
        deployment: Deployment,
        endpoint: str,
        clients: Any,
        base_env: dict[str, str],
        log_dir: Path,
        activity: Activity,
        clock_speed: float = 1.0,
        concurrency: int = 2,
    ) -> None:
        self.deployment = deployment
        self.endpoint = endpoint
        self.clients = clients
        self.base_env = base_env
        self.log_dir = log_dir
        self.activity = activity
        self.clock_speed = clock_speed
        self.pools = {
            name: FunctionPool(spec, self, spec.reserved_concurrency or concurrency)
            for name, spec in deployment.functions.items()
        }
        self._queues: dict[str, queue.Queue[AsyncEvent | None]] = {name: queue.Queue() for name in self.pools}
        self._threads: list[threading.Thread] = []
        self._timers: set[threading.Timer] = set()
        self._stopping = threading.Event()
        self._busy = 0
        self._busy_lock = threading.Lock()
        log_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------ lifecycle
    def start(self, prewarm: bool = True) -> None:
        for name, pool in self.pools.items():
            for i in range(pool.concurrency):
                self._thread(self._async_loop, f"async-{name}-{i}", name)
            if prewarm:
                self._thread(self._prewarm, f"prewarm-{name}", name)

    def _thread(self, target: Any, name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, name=name, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _prewarm(self, name: str) -> None:
        try:
            self.pools[name].release(self.pools[name].acquire())
        except Exception as error:  # reported again at the first invocation
            self.activity.note("lambda", f"{name}: could not start a worker: {error}", logging.WARNING)

    def stop(self) -> None:
        self._stopping.set()
        for timer in list(self._timers):
            timer.cancel()
        for q in self._queues.values():
            q.put(None)
        for pool in self.pools.values():
            pool.close()

    @property
    def idle(self) -> bool:
        """No invocation running or queued (the benchmark and tests wait for this)."""
        return self._busy == 0 and all(q.empty() for q in self._queues.values()) and not self._timers

    # ------------------------------------------------------------ workers
    def function_env(self, spec: FunctionSpec) -> dict[str, str]:
        stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        return {
            **self.base_env,
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "LAMBDA_RUNTIME_DIR": sys.prefix,
            "_HANDLER": spec.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            # Set by `sam local` too: there is no X-Ray daemon here, so Powertools' Tracer is off.
            "AWS_SAM_LOCAL": "true",
            "TZ": ":UTC",
            "PYTHONPATH": os.pathsep.join(str(p) for p in [spec.code_dir, *spec.layer_dirs]),
            **spec.environment,
        }

    def spawn(self, spec: FunctionSpec) -> Worker:
        started = time.monotonic()
        worker = Worker(spec, self.function_env(spec), self.log_path(spec))
        self.activity.count(f"lambda.cold_starts.{spec.logical_id}")
        self.activity.note(
            "lambda",
            f"{spec.logical_id}: worker {worker.proc.pid} ready in {time.monotonic() - started:.1f}s",
            logging.DEBUG,
        )
        return worker

    def log_path(self, spec: FunctionSpec) -> Path:
        return self.log_dir / f"{spec.logical_id}.log"

    def spec(self, name_or_arn: str) -> FunctionSpec | None:
        return self.deployment.functions.get(name_or_arn) or self.deployment.function_by_arn(name_or_arn)

    # ------------------------------------------------------------ invocations
    def invoke(self, spec: FunctionSpec, payload: Any, request_id: str | None = None) -> InvokeResult:
        """A synchronous invocation (RequestResponse)."""
        request_id = request_id or str(uuid.uuid4())
        pool = self.pools[spec.name]
        started = time.monotonic()
        with self._busy_lock:
            self._busy += 1
        try:
            worker = pool.acquire()
            try:
                response = worker.invoke(request_id, payload, spec.timeout)
            except FunctionTimeout:
                pool.discard(worker)
                message = f"Task timed out after {spec.timeout:.2f} seconds"
                with open(self.log_path(spec), "a") as log_file:
                    log_file.write(f"{datetime.now(UTC).isoformat()} {request_id} {message}\n")
                response = {"error": {"errorType": "Sandbox.Timedout", "errorMessage": message}}
            except WorkerDied as error:
                pool.discard(worker)
                response = {"error": {"errorType": "Runtime.ExitError", "errorMessage": f"Runtime exited: {error}"}}
            else:
                pool.release(worker)
        except WorkerDied as error:  # no worker could start, or the stack is stopping
            response = {"error": {"errorType": "Runtime.Unavailable", "errorMessage": str(error)}}
        finally:
            with self._busy_lock:
                self._busy -= 1
        duration = (time.monotonic() - started) * 1000
        self.activity.count(f"lambda.invocations.{spec.logical_id}")
        if "error" in response:
            error = response["error"]
            self.activity.count(f"lambda.errors.{spec.logical_id}")
            self.activity.note(
                "lambda",
                f"{spec.logical_id} {request_id}: {error['errorType']}: "
                f"{str(error['errorMessage']).splitlines()[0][:300]}"
                f" (log: {self.log_path(spec)})",
                logging.WARNING,
                function=spec.logical_id,
                error_type=error["errorType"],
            )
            return InvokeResult(json.dumps(error).encode(), error, duration, self._tail(spec))
        return InvokeResult(response["result"].encode(), None, duration, self._tail(spec))

    def _tail(self, spec: FunctionSpec) -> str:
        try:
            with open(self.log_path(spec), "rb") as log_file:
                log_file.seek(0, os.SEEK_END)
                log_file.seek(max(log_file.tell() - 4096, 0))
                return log_file.read().decode(errors="replace")
        except OSError:
            return ""

    def invoke_async(self, spec: FunctionSpec, payload: Any) -> str:
        """An asynchronous invocation (Event): queued, retried on error, then its destination."""
        event = AsyncEvent(payload)
        self._queues[spec.name].put(event)
        return event.request_id

    def _async_loop(self, name: str) -> None:
        spec = self.deployment.functions[name]
        q = self._queues[name]
        while True:
            event = q.get()
            if event is None or self._stopping.is_set():
                return
            try:
                self._async_attempt(spec, event)
            except Exception as error:
                self.activity.note("lambda", f"{spec.logical_id}: async delivery failed: {error!r}", logging.ERROR)

    def _async_attempt(self, spec: FunctionSpec, event: AsyncEvent) -> None:
        config = spec.invoke_config
        age = (time.time() - event.received) * self.clock_speed
        if age > config.maximum_event_age_seconds:
            self._async_failed(spec, event, None, "EventAgeExceeded")
            return
        event.attempts += 1
        result = self.invoke(spec, event.payload, event.request_id)
        if result.error is None:
            if config.on_success:
                self._send_record(config.on_success, spec, event, result, "Success")
            return
        if event.attempts <= config.maximum_retry_attempts:
            delay = ASYNC_RETRY_DELAYS[min(event.attempts - 1, len(ASYNC_RETRY_DELAYS) - 1)] / self.clock_speed
            self._later(delay, self._queues[spec.name].put, event)
            return
        self._async_failed(spec, event, result, "RetriesExhausted")

    def _later(self, delay: float, action: Any, *args: Any) -> None:
        def fire() -> None:
            self._timers.discard(timer)
            if not self._stopping.is_set():
                action(*args)

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        self._timers.add(timer)
        timer.start()

    def _async_failed(self, spec: FunctionSpec, event: AsyncEvent, result: InvokeResult | None, condition: str) -> None:
        config = spec.invoke_config
        where = config.on_failure or spec.dead_letter_arn
        self.activity.note(
            "lambda",
            f"{spec.logical_id} {event.request_id}: {condition} after {event.attempts} attempt(s)"
            + (f"; sent to {where.split(':')[-1]}" if where else "; dropped (no destination)"),
            logging.WARNING,
        )
        if config.on_failure:
            self._send_record(config.on_failure, spec, event, result, condition)
        elif spec.dead_letter_arn:
            error = result.error if result and result.error else {"errorMessage": condition}
            self.send_to_arn(
                spec.dead_letter_arn,
                json.dumps(event.payload),
                {
                    "RequestID": event.request_id,
                    "ErrorCode": "200",
                    "ErrorMessage": str(error.get("errorMessage", ""))[:1024],
                },
            )

    def _send_record(
        self, destination: str, spec: FunctionSpec, event: AsyncEvent, result: InvokeResult | None, condition: str
    ) -> None:
        record = {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "requestContext": {
                "requestId": event.request_id,
                "functionArn": f"{spec.arn}:$LATEST",
                "condition": condition,
                "approximateInvokeCount": event.attempts,
            },
            "requestPayload": event.payload,
        }
        if result is not None:
            record["responseContext"] = {"statusCode": 200, "executedVersion": "$LATEST"}
            if result.error:
                record["responseContext"]["functionError"] = "Unhandled"
            record["responsePayload"] = json.loads(result.payload or b"null")
        self.send_to_arn(destination, json.dumps(record), {})

    def send_to_arn(self, arn: str, body: str, attributes: dict[str, str]) -> None:
        service = arn.split(":")[2]
        if service == "sqs":
            sqs = self.clients.client("sqs")
            url = sqs.get_queue_url(QueueName=arn.split(":")[-1])["QueueUrl"]
            sqs.send_message(
                QueueUrl=url,
                MessageBody=body,
                MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items() if v},
            )
        elif service == "sns":
            self.clients.client("sns").publish(TopicArn=arn, Message=body)
        elif service == "lambda" and (target := self.spec(arn)) is not None:
            self.invoke_async(target, json.loads(body))
        elif service == "events":
            self.clients.client("events").put_events(
                Entries=[
                    {
                        "Source": "lambda",
                        "DetailType": "Lambda Function Invocation Result - Failure",
                        "Detail": body,
                        "EventBusName": arn,
                    }
                ]
            )
        else:
            self.activity.note("lambda", f"cannot deliver to {arn}: unsupported destination", logging.ERROR)

    # ------------------------------------------------------------ moto hooks
    def deliver_rule_target(self, rule_arn: str, target: dict[str, Any], payload: Any) -> None:
        """EventBridge -> a Lambda target: an asynchronous invoke. EventBridge retries only when the
        invoke itself fails (here: no such function), then uses the target's dead-letter queue."""
        spec = self.spec(target["Arn"])
        if spec is not None:
            self.invoke_async(spec, payload)
            return
        policy = target.get("RetryPolicy", {})
        attempts = int(policy.get("MaximumRetryAttempts", 185))
        max_age = int(policy.get("MaximumEventAgeInSeconds", 86400))
        self._undeliverable(rule_arn, target, payload, attempts, max_age, 0, time.time())

    def _undeliverable(
        self, rule_arn: str, target: dict[str, Any], payload: Any, attempts: int, max_age: int, tried: int, first: float
    ) -> None:
        if self.spec(target["Arn"]) is not None:
            self.invoke_async(self.spec(target["Arn"]), payload)  # type: ignore[arg-type]
            return
        delay = min(2**tried, 60) / self.clock_speed
        if tried < attempts and (time.time() - first + delay) * self.clock_speed < max_age:
            self._later(delay, self._undeliverable, rule_arn, target, payload, attempts, max_age, tried + 1, first)
            return
        message = f"Function not found: {target['Arn']}"
        self.activity.note("events", f"{rule_arn.split('/')[-1]}: {message}", logging.WARNING)
        dlq = target.get("DeadLetterConfig", {}).get("Arn")
        if dlq:
            self.send_to_arn(
                dlq,
                json.dumps(payload),
                {
                    "RULE_ARN": rule_arn,
                    "TARGET_ARN": target["Arn"],
                    "ERROR_CODE": "RESOURCE_NOT_FOUND",
                    "ERROR_MESSAGE": message,
                },
            )

    def moto_invoke(
        self, function_arn: str, payload: Any, invocation_type: str
    ) -> tuple[bytes, str | None, str] | None:
        """Invoke through the Lambda API; None for a function this stack does not run."""
        spec = self.spec(function_arn)
        if spec is None:
            return None
        if invocation_type == "Event":
            self.invoke_async(spec, payload)
            return b"", None, ""
        if invocation_type == "DryRun":
            return b"", None, ""
        result = self.invoke(spec, payload)
        return result.payload, result.function_error, result.log_tail
