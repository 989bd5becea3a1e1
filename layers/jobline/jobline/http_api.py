"""Routing of API Gateway HTTP API events (payload format 2.0) to the operators' API routes.

jobline's own, not Powertools' event_handler: importing that package imports every resolver it
has (AppSync's with asyncio, Bedrock's, VPC Lattice's, every event data class), about a third of
`import boto3` at each cold start for a dozen fixed JSON routes (docs/PERFORMANCE.md, "Cold
start"). The event and response formats:
https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from jobline.operator_errors import NotFound


@dataclass(frozen=True)
class Request:
    """The parts of an HTTP API request the routes read."""

    event: dict[str, Any]

    @property
    def method(self) -> str:
        return self.event["requestContext"]["http"]["method"].upper()

    @property
    def path(self) -> str:
        """The path without the stage, which `rawPath` starts with unless the stage is `$default`."""
        stage = self.event["requestContext"].get("stage", "$default")
        raw = self.event["rawPath"]
        return raw if stage == "$default" else raw.removeprefix(f"/{stage}")

    @property
    def query(self) -> dict[str, str]:
        return self.event.get("queryStringParameters") or {}

    @property
    def body(self) -> str:
        """The body as text, "" when there is none; a ValueError when base64 or UTF-8 is broken."""
        body = self.event.get("body") or ""
        return base64.b64decode(body, validate=True).decode() if self.event.get("isBase64Encoded") else body

    @property
    def caller(self) -> str | None:
        """The IAM caller's ARN (the API's authorizer is AWS_IAM)."""
        iam = (self.event["requestContext"].get("authorizer") or {}).get("iam") or {}
        return iam.get("userArn") or None


@dataclass(frozen=True)
class Response:
    status: HTTPStatus
    body: dict[str, Any]

    def to_lambda(self) -> dict[str, Any]:
        return {
            "statusCode": int(self.status),
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps(self.body),
            "isBase64Encoded": False,
        }


Route = Callable[..., dict[str, Any] | Response]
ErrorHandler = Callable[[Any], Response]


class Router:
    """Routes by method and path (`<name>` matches one path segment, passed as a keyword); a
    route returns a Response, or a dict for a 200. An exception is answered by the handler of its
    nearest class that has one, else raised (Lambda reports the error, API Gateway answers 500)."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Route]] = []
        self._error_handlers: dict[type[BaseException], ErrorHandler] = {}

    def route(self, method: str, path: str) -> Callable[[Route], Route]:
        pattern = re.compile("^" + re.sub(r"<(\w+)>", r"(?P<\1>[^/]+)", path) + "$")

        def register(func: Route) -> Route:
            self._routes.append((method, pattern, func))
            return func

        return register

    def get(self, path: str) -> Callable[[Route], Route]:
        return self.route("GET", path)

    def post(self, path: str) -> Callable[[Route], Route]:
        return self.route("POST", path)

    def exception_handler(self, kind: type[BaseException]) -> Callable[[ErrorHandler], ErrorHandler]:
        def register(func: ErrorHandler) -> ErrorHandler:
            self._error_handlers[kind] = func
            return func

        return register

    def resolve(self, event: dict[str, Any]) -> dict[str, Any]:
        request = Request(event)
        try:
            answer = self._dispatch(request)
        except Exception as error:
            handler = next((self._error_handlers[k] for k in type(error).__mro__ if k in self._error_handlers), None)
            if handler is None:
                raise
            answer = handler(error)
        return (answer if isinstance(answer, Response) else Response(HTTPStatus.OK, answer)).to_lambda()

    def _dispatch(self, request: Request) -> dict[str, Any] | Response:
        method, path = request.method, request.path
        for route_method, pattern, func in self._routes:
            if route_method == method and (match := pattern.match(path)):
                return func(request, **match.groupdict())
        raise RouteNotFound(f"no route {method} {path}: docs/API.md lists the routes")


class RouteNotFound(NotFound):
    """A method and path no route takes (API Gateway itself answers 404 for those on AWS)."""
