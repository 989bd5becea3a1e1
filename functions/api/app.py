"""The operators' HTTP API (API Gateway HTTP API, IAM auth): thin routes over jobline.operations.

Bad input is a 400 with {"code", "message"} saying what and why; an unknown run or job a 404; a
request the run's state refuses (retry of a live run, a reused client token) a 409.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobline.errors import RejectedInput
from jobline.http_api import Request, Response, Router
from jobline.observability import logger, metrics, tracer
from jobline.operations import get_operations
from jobline.operator_errors import Conflict, InvalidRequest, NotFound

if TYPE_CHECKING:
    from jobline.fanout_operations import FanoutOperations

app = Router()
LIST_RUNS_QUERY = ("job", "status", "since", "max_results", "next_token")


class StartRunBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    job: str = Field(min_length=1, max_length=64)
    parameters: dict[str, str] = Field(default_factory=dict)
    client_token: str | None = None


class StopRunsBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    run_ids: list[str]


class RetryRunBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    client_token: str | None = None


class StartFanoutBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    job: str = Field(min_length=1, max_length=64)
    # Builtin types only: loaded by path (tests), the module has no sys.modules entry for pydantic to resolve names in.
    items: list[object] | None = None
    manifest: str | None = Field(default=None, pattern=r"^s3://[^/]+/.+")
    format: str | None = Field(default=None, pattern=r"^(csv|jsonl)$")
    trigger: int = Field(default=0, ge=0)
    client_token: str | None = None


class StopFanoutBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    next_token: str | None = None


@app.get("/jobs")
def list_jobs(request: Request) -> dict[str, Any]:
    return {"jobs": get_operations().list_jobs()}


@app.get("/jobs/<name>")
def show_job(request: Request, name: str) -> dict[str, Any]:
    return get_operations().show_job(name)


@app.post("/runs")
def start_run(request: Request) -> Response:
    body = _body(request, StartRunBody)
    started = get_operations().start_run(body.job, body.parameters, body.client_token, requested_by=request.caller)
    return Response(HTTPStatus.CREATED if started["created"] else HTTPStatus.OK, started)


@app.get("/runs")
def list_runs(request: Request) -> dict[str, Any]:
    query = request.query
    if unknown := sorted(set(query) - set(LIST_RUNS_QUERY)):
        raise InvalidRequest(f"unknown query parameters {unknown}: use {', '.join(LIST_RUNS_QUERY)}")
    return get_operations().list_runs(**{name: query.get(name) for name in LIST_RUNS_QUERY})


@app.get("/runs/<run_id>")
def get_run(request: Request, run_id: str) -> dict[str, Any]:
    return get_operations().get_run(run_id)


@app.post("/runs/stop")
def stop_runs(request: Request) -> dict[str, Any]:
    return get_operations().stop_runs(_body(request, StopRunsBody).run_ids)


@app.post("/runs/<run_id>/retry")
def retry_run(request: Request, run_id: str) -> Response:
    retried = get_operations().retry_run(run_id, _body(request, RetryRunBody).client_token)
    return Response(HTTPStatus.CREATED if retried["created"] else HTTPStatus.OK, retried)


@app.post("/fanouts")
def start_fanout(request: Request) -> Response:
    body = _body(request, StartFanoutBody)
    fields = body.model_dump(exclude={"job"})
    started = _fanout_operations().start(body.job, **fields)
    return Response(HTTPStatus.ACCEPTED, started)  # the fan-out function reads it next


@app.get("/fanouts")
def list_fanouts(request: Request) -> dict[str, Any]:
    query = request.query
    if unknown := sorted(set(query) - {"max_results", "next_token"}):
        raise InvalidRequest(f"unknown query parameters {unknown}: use max_results, next_token")
    return _fanout_operations().list(query.get("max_results"), query.get("next_token"))


@app.get("/fanouts/<fanout_id>")
def get_fanout(request: Request, fanout_id: str) -> dict[str, Any]:
    return _fanout_operations().get(fanout_id)


@app.post("/fanouts/<fanout_id>/stop")
def stop_fanout(request: Request, fanout_id: str) -> dict[str, Any]:
    return _fanout_operations().stop(fanout_id, _body(request, StopFanoutBody).next_token)


@app.exception_handler(ValidationError)
def invalid_body(error: ValidationError) -> Response:
    problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors()[:5])
    return _error(HTTPStatus.BAD_REQUEST, InvalidRequest.code, f"invalid request body: {problems}")


@app.exception_handler(RejectedInput)
def rejected(error: RejectedInput) -> Response:
    return _error(HTTPStatus.BAD_REQUEST, error.code, str(error))


@app.exception_handler(NotFound)
def not_found(error: NotFound) -> Response:
    return _error(HTTPStatus.NOT_FOUND, error.code, str(error))


@app.exception_handler(Conflict)
def conflict(error: Conflict) -> Response:
    return _error(HTTPStatus.CONFLICT, error.code, str(error))


def _body(request: Request, model: type[BaseModel]) -> Any:
    try:
        data = json.loads(request.body or "{}")
    except ValueError:  # broken base64 and UTF-8 too
        raise InvalidRequest("the request body is not JSON") from None
    return model.model_validate(data)


def _fanout_operations() -> FanoutOperations:
    # On first use: only the fan-out routes need the manifest and fan-out modules.
    from jobline.fanout_operations import get_fanout_operations

    return get_fanout_operations()


def _error(status: HTTPStatus, code: str, message: str) -> Response:
    logger.info("request refused", extra={"status": int(status), "code": code, "reason": message})
    return Response(status, {"code": code, "message": message})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event)
