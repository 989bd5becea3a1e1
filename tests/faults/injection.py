"""Faults in AWS calls, as a caller sees them after the SDK's own retries.

Every boto3 call in the process (a handler's, and the calls moto's Step Functions engine makes for
the ASL's Task states) goes through `BaseClient._make_api_call`; the injector wraps it and fails the
calls its rules name. A fault is what reaches the caller once botocore has given up:
- `throttle`: the service's throttling error (the call never ran);
- `server_error`: a 5xx (the call never ran);
- `crash`: the invocation dies just before this call, after the previous one completed (a Lambda
  timeout, OOM or lost container); raised as a BaseException so no handler code can catch it;
- `lost_response`: the call ran at AWS, but its response never arrived (botocore's
  ReadTimeoutError once its retries are spent).
Calls are told apart by origin: `handler` (the test's main thread) or `engine` (the threads moto's
Step Functions engine runs executions on), so a rule on a handler's UpdateItem never fires inside
an execution's UpdateItem task; and by scope: `main` for the deliveries a case makes itself, the
function's name for those the stack's event sources make as runs go on (Stack.settle: the
submitter, the state change handler, the stream consumer), so a rule on a trigger's PutItem never
fires in the submitter's ticket PutItem.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.client import BaseClient
from botocore.exceptions import ReadTimeoutError

Kind = Literal["throttle", "server_error", "crash", "lost_response"]
KINDS: tuple[Kind, ...] = ("throttle", "server_error", "crash", "lost_response")
# Outages worth telling apart: a call refused every time, and a call that runs every time but
# whose caller never hears back (a 5xx outage or a crash loop behaves as the first).
OUTAGE_KINDS: tuple[Kind, ...] = ("throttle", "lost_response")
# Faults the Step Functions service can meet in a Task state (its own process does not crash).
ENGINE_KINDS: tuple[Kind, ...] = ("throttle", "server_error", "lost_response")
Origin = Literal["handler", "engine"]

# (error code, HTTP status) per service, from each API reference's Common Errors / operation Errors.
THROTTLE = {
    "dynamodb": ("ThrottlingException", 400),
    "stepfunctions": ("ThrottlingException", 400),
    "s3": ("SlowDown", 503),
    "sqs": ("RequestThrottled", 400),
    "batch": ("TooManyRequestsException", 429),
    "events": ("ThrottlingException", 400),
    "sns": ("Throttling", 400),
    "glue": ("ThrottlingException", 400),
    "sagemaker": ("ThrottlingException", 400),
}
SERVER_ERROR = {
    "dynamodb": ("InternalServerError", 500),
    "stepfunctions": ("InternalFailure", 500),
    "s3": ("InternalError", 500),
    "sqs": ("InternalFailure", 500),
    "batch": ("ServerException", 500),
    "events": ("InternalException", 500),
    "sns": ("InternalError", 500),
    "glue": ("InternalServiceException", 500),
    "sagemaker": ("InternalFailure", 500),
}


class InvocationCrash(BaseException):
    """The invocation died between two AWS calls (not an Exception: nothing in a handler catches it)."""


def injected(error: BaseException | None) -> bool:
    """Whether an exception is (or was raised because of) an injected fault; a Powertools batch
    error whose every record failed counts when each record's error does."""
    seen = 0
    while error is not None and seen < 20:
        if isinstance(error, InvocationCrash) or getattr(error, "jobline_injected", False):
            return True
        children = getattr(error, "child_exceptions", None)
        if children:
            return all(injected(child[1]) for child in children)
        error = error.__cause__ or error.__context__
        seen += 1
    return False


@dataclass
class Rule:
    """Fail the `nth` (1-based) call of service.operation from `origin`; `outage`: that call and
    every later one, until the rule is lifted."""

    service: str
    operation: str
    nth: int
    kind: Kind
    origin: Origin = "handler"
    outage: bool = False
    fired: int = 0
    scope: str = "main"


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    origin: Origin
    params: dict[str, Any]
    reached_aws: bool
    scope: str = "main"


@dataclass
class Injector:
    rules: list[Rule] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    _seen: dict[tuple[str, str, Origin, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)

    @contextmanager
    def handling(self) -> Iterator[None]:
        """Inside a handler's invocation: its calls are counted and may fail (the test's own calls
        outside it, setting up and checking, never are)."""
        self._local.active = True
        try:
            yield
        finally:
            self._local.active = False

    @contextmanager
    def scoped(self, scope: str) -> Iterator[None]:
        """The invocations made inside are an event source's, as `scope` (a function's name)."""
        self._local.scope = scope
        try:
            yield
        finally:
            self._local.scope = "main"

    def reset(self) -> None:
        with self._lock:
            self.rules.clear()
            self.calls.clear()
            self._seen.clear()

    def lift(self) -> None:
        """End every outage (AWS recovered); the rules' counts stay for the tally."""
        with self._lock:
            for rule in self.rules:
                rule.outage = False
                rule.nth = -1

    @property
    def fired(self) -> int:
        return sum(rule.fired for rule in self.rules)

    def sequence(self, origin: Origin = "handler", scope: str = "main") -> list[tuple[str, str]]:
        return [(c.service, c.operation) for c in self.calls if c.origin == origin and c.scope == scope]

    def made(self, service: str, operation: str) -> list[dict[str, Any]]:
        """The parameters of every call that reached AWS."""
        return [c.params for c in self.calls if (c.service, c.operation) == (service, operation) and c.reached_aws]

    def _match(self, service: str, operation: str, origin: Origin) -> Rule | None:
        with self._lock:
            key = (service, operation, origin, getattr(self._local, "scope", "main"))
            self._seen[key] = count = self._seen.get(key, 0) + 1
            for rule in self.rules:
                if (rule.service, rule.operation, rule.origin, rule.scope) != key or rule.nth < 0:
                    continue
                if count == rule.nth or (rule.outage and count >= rule.nth):
                    rule.fired += 1
                    return rule
            return None

    def call(self, client: BaseClient, original: Any, operation: str, params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        name = operation  # the API name (PutItem), as botocore passes it
        origin: Origin = "handler" if threading.current_thread() is threading.main_thread() else "engine"
        if origin == "handler" and not getattr(self._local, "active", False):
            return original(client, operation, params)
        rule = self._match(service, name, origin)
        if rule is None or rule.kind == "lost_response":
            sent = dict(params)  # as the caller passed them (botocore replaces a Body in place)
            response = original(client, operation, params)
            self._log(service, name, origin, sent, reached=True)
            if rule is not None:
                error = ReadTimeoutError(endpoint_url=client.meta.endpoint_url)
                error.jobline_injected = True  # type: ignore[attr-defined]
                raise error
            return response
        self._log(service, name, origin, params, reached=False)
        if rule.kind == "crash":
            raise InvocationCrash(f"invocation died before {service}.{name}")
        code, status = (THROTTLE if rule.kind == "throttle" else SERVER_ERROR)[service]
        # As botocore raises it: the service model's exception class for a modeled code (whose
        # class name Step Functions' aws-sdk integrations build the error name from), else ClientError.
        error = client.exceptions.from_code(code)(
            {
                "Error": {"Code": code, "Message": f"injected {rule.kind}"},
                "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "injected-fault", "HTTPHeaders": {}},
            },
            name,
        )
        error.jobline_injected = True  # type: ignore[attr-defined]
        raise error

    def _log(self, service: str, name: str, origin: Origin, params: dict[str, Any], reached: bool) -> None:
        with self._lock:
            scope = getattr(self._local, "scope", "main")
            self.calls.append(Call(service, name, origin, params, reached, scope))


@contextmanager
def installed(injector: Injector) -> Iterator[Injector]:
    original = BaseClient._make_api_call

    def make_api_call(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        return injector.call(self, original, operation_name, api_params)

    BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
    try:
        yield injector
    finally:
        BaseClient._make_api_call = original  # type: ignore[method-assign]
