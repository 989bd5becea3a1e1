"""Local Lambda: each function runs in warm worker processes with its template environment, and
is invoked as Lambda invokes it: synchronously (Invoke, SQS event source mappings) or
asynchronously (EventBridge rule targets, EventBridge Scheduler) with Lambda's retries and
on-failure destinations."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import queue
import select
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobline_local.activity import Activity
from jobline_local.deploy import Deployment, EventSourceMapping, FunctionSpec

BOOTSTRAP = "import runpy, sys; runpy.run_path(sys.argv.pop(1), run_name='__main__')"
RUNTIME_FILE = Path(__file__).with_name("lambda_runtime.py")
INIT_TIMEOUT_SECONDS = 60  # Lambda allows 10 s of init; two busy cores importing boto3 need more
# Lambda's async invocation retries: about 1 minute, then about 2 minutes (divided by the clock speed).
ASYNC_RETRY_DELAYS = (60, 120)


class FunctionTimeout(Exception):
    pass


class WorkerDied(Exception):
    pass


@dataclass
class InvokeResult:
    payload: bytes
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0
    log_tail: str = ""

    @property
    def function_error(self) -> str | None:
        return "Unhandled" if self.error else None


class Worker:
    """One warm execution environment: a process running lambda_runtime for one function."""

    def __init__(self, spec: FunctionSpec, env: dict[str, str], log_path: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the worker
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and runtime
            [sys.executable, "-u", "-c", BOOTSTRAP, str(RUNTIME_FILE)],
            cwd=spec.code_dir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self._buffer = b""
        ready = self._read(INIT_TIMEOUT_SECONDS)
        self.init_error = ready.get("init_error")

    def _read(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FunctionTimeout
            readable, _, _ = select.select([fd], [], [], left)
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise WorkerDied(f"exit code {self.proc.wait()}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def invoke(self, request_id: str, payload: Any, timeout: float) -> dict[str, Any]:
        request = {
            "request_id": request_id,
            "payload": payload,
            "deadline_ms": int((time.time() + timeout) * 1000),
            "function_arn": self.spec.arn,
        }
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        except BrokenPipeError as error:
            raise WorkerDied("the worker is gone") from error
        return self._read(timeout)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 2.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # type: ignore[union-attr]
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()  # type: ignore[union-attr]
        self._log.close()


class FunctionPool:
    """Warm workers of one function, up to its concurrency: an invoke takes an idle worker, or
    starts one (a cold start), or waits."""

    def __init__(self, spec: FunctionSpec, service: LambdaService, concurrency: int) -> None:
        self.spec = spec
        self.service = service
        self.concurrency = concurrency
        self._idle: list[Worker] = []
        self._all: set[Worker] = set()
        self._count = 0
        self._cond = threading.Condition()
        self.closed = False

    def acquire(self) -> Worker:
        with self._cond:
            while True:
                if self.closed:
                    raise WorkerDied("the local stack is stopping")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        return worker
                    self._forget(worker)
                if self._count < self.concurrency:
                    self._count += 1
                    break
                self._cond.wait(1)
        try:
            worker = self.service.spawn(self.spec)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._all.add(worker)
        return worker

    def _forget(self, worker: Worker) -> None:
        self._all.discard(worker)
        self._count -= 1
        worker.stop(0)

    def release(self, worker: Worker) -> None:
        with self._cond:
            if worker.alive() and not self.closed:
                self._idle.append(worker)
            else:
                self._forget(worker)
            self._cond.notify()

    def discard(self, worker: Worker) -> None:
        if worker.alive():
            worker.proc.kill()
        self.release(worker)

    def close(self) -> None:
        with self._cond:
            self.closed = True
            workers = list(self._all)
            self._cond.notify_all()
        for worker in workers:
            if worker.alive():
                worker.proc.kill()
        for worker in workers:
            with contextlib.suppress(OSError, ValueError):
                worker.stop(0)


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


class SqsPoller:
    """An SQS event source mapping: long-polls the queue, invokes the function with batches of
    records shaped as Lambda's, deletes what succeeded. With ReportBatchItemFailures only the
    listed messages stay; a function error keeps the whole batch. Messages that stay become
    visible again after the queue's visibility timeout (divided by the clock speed), and the
    queue's redrive policy moves them to its dead-letter queue after maxReceiveCount receives."""

    def __init__(self, mapping: EventSourceMapping, lambdas: LambdaService, clients: Any, clock_speed: float) -> None:
        self.mapping = mapping
        self.lambdas = lambdas
        self.sqs = clients.client("sqs")
        self.clock_speed = clock_speed
        self.region = lambdas.deployment.region
        self.url = self.sqs.get_queue_url(QueueName=mapping.source_arn.split(":")[-1])["QueueUrl"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["VisibilityTimeout"])
        self.visibility_timeout = int(attributes["Attributes"].get("VisibilityTimeout", 30))
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.in_flight = 0

    def start(self) -> None:
        spec = self.lambdas.deployment.functions[self.mapping.function_name]
        pollers = self.mapping.maximum_concurrency or self.lambdas.pools[spec.name].concurrency
        for i in range(max(1, int(pollers))):
            thread = threading.Thread(target=self._loop, name=f"sqs-poller-{spec.logical_id}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()

    def _loop(self) -> None:
        spec = self.lambdas.deployment.functions[self.mapping.function_name]
        while not self._stopping.is_set():
            try:
                messages = self.sqs.receive_message(
                    QueueUrl=self.url,
                    MaxNumberOfMessages=min(self.mapping.batch_size, 10),
                    WaitTimeSeconds=1,
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception as error:
                if self._stopping.is_set():
                    return
                self.lambdas.activity.note("sqs", f"receive failed: {error!r}", logging.WARNING)
                time.sleep(1)
                continue
            if messages:
                self.in_flight += 1
                try:
                    self._process(spec, messages)
                finally:
                    self.in_flight -= 1

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        attributes = {}
        for name, value in message.get("MessageAttributes", {}).items():
            attribute: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
            if "StringValue" in value:
                attribute["stringValue"] = value["StringValue"]
            if "BinaryValue" in value:
                attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
            attributes[name] = attribute
        record = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": attributes,
            "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324
            "eventSource": "aws:sqs",
            "eventSourceARN": self.mapping.source_arn,
            "awsRegion": self.region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        return record

    def _process(self, spec: FunctionSpec, messages: list[dict[str, Any]]) -> None:
        records = [self._record(m) for m in messages]
        result = self.lambdas.invoke(spec, {"Records": records})
        by_id = {m["MessageId"]: m for m in messages}
        if result.error is not None:
            failed = set(by_id)
        elif self.mapping.report_batch_item_failures:
            failed = self._failures(json.loads(result.payload or b"null"), set(by_id))
        else:
            failed = set()
        done = [m for i, m in by_id.items() if i not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done[start : start + 10])
                ],
            )
        if failed:
            self.lambdas.activity.note(
                "sqs", f"{spec.logical_id}: {len(failed)} of {len(messages)} message(s) failed; SQS will redeliver them"
            )
            if self.clock_speed > 1:
                timeout = int(self.visibility_timeout / self.clock_speed)
                entries = [
                    {"Id": str(n), "ReceiptHandle": by_id[i]["ReceiptHandle"], "VisibilityTimeout": timeout}
                    for n, i in enumerate(sorted(failed))
                ]
                for start in range(0, len(entries), 10):
                    self.sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=entries[start : start + 10])

    def _failures(self, response: Any, ids: set[str]) -> set[str]:
        """Lambda's reading of a partial batch response: a malformed one fails the whole batch."""
        if response is None or (isinstance(response, dict) and not response.get("batchItemFailures")):
            return set()
        if not isinstance(response, dict) or not isinstance(response["batchItemFailures"], list):
            return ids
        failed = set()
        for item in response["batchItemFailures"]:
            identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
            if not identifier or identifier not in ids:
                return ids
            failed.add(identifier)
        return failed


class DynamoDBStreamPoller:
    """A DynamoDB stream event source mapping: reads the table's stream in order, drops records
    its filter criteria reject, and invokes the function with batches shaped as Lambda's. A
    failed batch is retried (from the first reported failure with ReportBatchItemFailures, or
    halved with BisectBatchOnFunctionError) up to MaximumRetryAttempts, then described to the
    on-failure destination, as Lambda does; the shard waits meanwhile."""

    def __init__(self, mapping: EventSourceMapping, lambdas: LambdaService, clients: Any, clock_speed: float) -> None:
        from moto.events.models import EventPattern  # EventBridge's pattern language, as filters use it

        self.mapping = mapping
        self.lambdas = lambdas
        self.streams = clients.client("dynamodbstreams")
        self.clock_speed = clock_speed
        self.region = lambdas.deployment.region
        self.filters = [EventPattern.load(pattern) for pattern in mapping.filters]
        self._stopping = threading.Event()
        self.in_flight = 0

    def start(self) -> None:
        spec = self.lambdas.deployment.functions[self.mapping.function_name]
        threading.Thread(target=self._loop, name=f"ddb-stream-{spec.logical_id}", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()

    def _record(self, record: dict[str, Any]) -> dict[str, Any]:
        change = dict(record["dynamodb"])
        created = change.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            change["ApproximateCreationDateTime"] = int(created.timestamp())
        return {
            **record,
            "eventVersion": "1.1",
            "awsRegion": self.region,
            "dynamodb": change,
            "eventSourceARN": self.mapping.source_arn,
        }

    def _wanted(self, record: dict[str, Any]) -> bool:
        return not self.filters or any(f.matches_event(record) for f in self.filters)

    def _loop(self) -> None:
        spec = self.lambdas.deployment.functions[self.mapping.function_name]
        arn = self.mapping.source_arn
        iterator = None
        pending: list[dict[str, Any]] = []
        while not self._stopping.is_set():
            try:
                if iterator is None:
                    shards = self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
                    if not shards:
                        self._stopping.wait(1)
                        continue
                    iterator = self.streams.get_shard_iterator(
                        StreamArn=arn, ShardId=shards[0]["ShardId"], ShardIteratorType=self.mapping.starting_position
                    )["ShardIterator"]
                response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                iterator = response.get("NextShardIterator")
                pending.extend(r for r in map(self._record, response.get("Records", [])) if self._wanted(r))
            except Exception as error:
                if self._stopping.is_set():
                    return
                self.lambdas.activity.note("ddb", f"stream read failed: {error!r}", logging.WARNING)
                iterator = None
                self._stopping.wait(1)
                continue
            if not pending:
                self._stopping.wait(max(0.25, self.mapping.batching_window_seconds / 4))
                continue
            batch, pending = pending[: self.mapping.batch_size], pending[self.mapping.batch_size :]
            self.in_flight += 1
            try:
                self._deliver(spec, batch)
            finally:
                self.in_flight -= 1

    def _deliver(self, spec: FunctionSpec, batch: list[dict[str, Any]]) -> None:
        tries = 0
        while batch and not self._stopping.is_set():
            tries += 1
            result = self.lambdas.invoke(spec, {"Records": batch})
            if result.error is None and not self.mapping.report_batch_item_failures:
                return
            if result.error is None:
                sequence = {r["dynamodb"]["SequenceNumber"]: i for i, r in enumerate(batch)}
                failed = self._first_failure(json.loads(result.payload or b"null"), sequence)
                if failed is None:
                    return
                batch = batch[failed:]
            elif self.mapping.bisect_on_error and len(batch) > 1:
                half = len(batch) // 2
                self._deliver(spec, batch[:half])
                self._deliver(spec, batch[half:])
                return
            if 0 <= self.mapping.maximum_retry_attempts < tries:
                self._give_up(spec, batch, tries, result)
                return
            self._stopping.wait(min(2 ** (tries - 1), 30) / self.clock_speed)

    @staticmethod
    def _first_failure(response: Any, sequence: dict[str, int]) -> int | None:
        """Index of the batch's first failed record; a malformed response fails the whole batch."""
        if response is None or (isinstance(response, dict) and not response.get("batchItemFailures")):
            return None
        try:
            return min(sequence[item["itemIdentifier"]] for item in response["batchItemFailures"])
        except (KeyError, TypeError):
            return 0

    def _give_up(self, spec: FunctionSpec, batch: list[dict[str, Any]], tries: int, result: InvokeResult) -> None:
        message = f"{spec.logical_id}: gave up on {len(batch)} stream record(s) after {tries} attempts"
        self.lambdas.activity.note("ddb", message, logging.WARNING)
        if not self.mapping.on_failure:
            return
        first, last = batch[0]["dynamodb"], batch[-1]["dynamodb"]
        record = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": spec.arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": tries,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                **({"functionError": "Unhandled"} if result.error else {}),
            },
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "DDBStreamBatchInfo": {
                "shardId": "shard-local",
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": first.get("ApproximateCreationDateTime"),
                "approximateArrivalOfLastRecord": last.get("ApproximateCreationDateTime"),
                "batchSize": len(batch),
                "streamArn": self.mapping.source_arn,
            },
        }
        self.lambdas.send_to_arn(self.mapping.on_failure, json.dumps(record, default=str), {})
