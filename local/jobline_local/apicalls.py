"""Counting the AWS API calls that reach the local stack, by service:Operation and by caller.

The operation is read the way AWS reads it: the X-Amz-Target header (JSON protocols), the Action
parameter (query protocols), or the HTTP method and path matched against botocore's request URIs
(REST protocols). The caller is told apart by its User-Agent."""

from __future__ import annotations

import collections
import io
import re
import threading
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs

import botocore.session

_CREDENTIAL = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/")
_SIGNING_TO_SERVICE = {"states": "stepfunctions", "execute-api": "apigateway"}


@lru_cache(maxsize=32)
def _rest_routes(service: str) -> list[tuple[str, re.Pattern[str], dict[str, str | None], list[str], int, str]]:
    try:
        model = botocore.session.get_session().get_service_model(service)
    except Exception:
        return []
    routes = []
    for name in model.operation_names:
        operation = model.operation_model(name)
        http = operation.http
        shape = operation.input_shape
        headers = [
            "HTTP_" + shape.members[m].serialization["name"].upper().replace("-", "_")
            for m in (shape.required_members if shape is not None else [])
            if shape.members[m].serialization.get("location") == "header"
        ]
        uri = http.get("requestUri", "/")
        path, _, query = uri.partition("?")
        pattern = ""
        literal = 0
        for piece in re.split(r"(\{[^}]+\})", path):
            if piece.startswith("{"):
                pattern += ".+" if piece.endswith("+}") else "[^/]+"
            else:
                pattern += re.escape(piece)
                literal += len(piece)
        required: dict[str, str | None] = {}
        for item in filter(None, query.split("&")):
            key, _, value = item.partition("=")
            required[key] = value or None
        score = literal + 100 * (len(required) + len(headers))
        routes.append((http.get("method", "POST"), re.compile(f"^{pattern}/?$"), required, headers, score, name))
    return routes


def rest_operation(environ: dict[str, Any], service: str, method: str, path: str, query: dict[str, list[str]]) -> str:
    best, best_score = "Unknown", -1
    for route_method, pattern, required, headers, score, name in _rest_routes(service):
        if route_method != method or score <= best_score or not pattern.match(path):
            continue
        if all(h in environ for h in headers) and all(
            key in query and (value is None or value in query[key]) for key, value in required.items()
        ):
            best, best_score = name, score
    return best


def caller(user_agent: str) -> str:
    if "app/jobline-local" in user_agent:
        return "local stand-ins"
    if "app/jobline-bench" in user_agent:
        return "benchmark client"
    if "AWS_Lambda" in user_agent:
        return "lambda functions"
    if "AWS_ECS_FARGATE" in user_agent:
        return "batch jobs"
    return "step functions & other clients"


class ApiCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_operation: collections.Counter[str] = collections.Counter()
        self.by_caller: collections.Counter[str] = collections.Counter()

    def observe(self, environ: dict[str, Any]) -> None:
        operation = self.operation(environ)
        who = caller(environ.get("HTTP_USER_AGENT", ""))
        with self._lock:
            self.by_operation[operation] += 1
            self.by_caller[f"{who}|{operation}"] += 1

    @staticmethod
    def operation(environ: dict[str, Any]) -> str:
        match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        signing = match.group(1) if match else "unsigned"
        service = _SIGNING_TO_SERVICE.get(signing, signing)
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target:
            return f"{service}:{target.rsplit('.', 1)[-1]}"
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if "Action" in query:
            return f"{service}:{query['Action'][0]}"
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "POST" and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
            action = parse_qs(body.decode(errors="replace")).get("Action")
            if action:
                return f"{service}:{action[0]}"
        return f"{service}:{rest_operation(environ, service, method, environ.get('PATH_INFO', '/'), query)}"

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {"by_operation": dict(self.by_operation), "by_caller": dict(self.by_caller)}
