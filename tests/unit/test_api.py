"""The operators' HTTP API handler on API Gateway HTTP API (payload 2.0) events, against moto: every
route, every bad input as a 4xx with a reason, and the template's routes, auth and permissions."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from jobline import fanout_operations, operations
from tests.cfn import ROOT, resource, template
from tests.unit.conftest import LambdaContext, load_handler

pytestmark = pytest.mark.usefixtures("env")
CALLER = "arn:aws:iam::123456789012:user/ada"


def http_event(
    method: str, path: str, body: Any = None, query: dict[str, str] | None = None, stage: str = "$default"
) -> dict[str, Any]:
    """An HTTP API payload 2.0 event as API Gateway sends it (rawPath starts with a named stage)."""
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": urlencode(query or {}),
        "queryStringParameters": query,
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "authorizer": {"iam": {"userArn": CALLER, "accountId": "123456789012"}},
            "domainName": "api.execute-api.us-east-1.amazonaws.com",
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "10.0.0.1"},
            "requestId": "request-1",
            "routeKey": "$default",
            "stage": stage,
            "time": "20/Nov/2026:08:00:00 +0000",
            "timeEpoch": 1795334400000,
        },
        "body": body if isinstance(body, str) or body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


@pytest.fixture
def handler() -> Iterator[Any]:
    operations.get_operations.cache_clear()
    fanout_operations.get_fanout_operations.cache_clear()
    yield load_handler("api").handler
    operations.get_operations.cache_clear()
    fanout_operations.get_fanout_operations.cache_clear()


@pytest.fixture
def api(handler: Any) -> Any:
    def call(method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> tuple[int, Any]:
        response = handler(http_event(method, path, body, query), LambdaContext())
        return response["statusCode"], json.loads(response["body"])

    return call


def start(api: Any, name: str = "token-1", **body: Any) -> str:
    status, started = api("POST", "/runs", {"job": "nightly-report", "client_token": name, **body})
    assert status == 201, started
    return started["run_id"]


# ---------------------------------------------------------------- routes
def test_get_jobs_and_one_job(api: Any) -> None:
    status, body = api("GET", "/jobs")
    assert status == 200
    assert [job["name"] for job in body["jobs"]] == ["csv-word-count", "nightly-report"]
    status, job = api("GET", "/jobs/nightly-report")
    assert (status, job["name"], job["parameters"]["day"]["default"]) == (200, "nightly-report", "")


def test_post_runs_starts_a_run_once_per_client_token(api: Any) -> None:
    status, first = api(
        "POST", "/runs", {"job": "nightly-report", "parameters": {"day": "2026-11-20"}, "client_token": "t1"}
    )
    again_status, again = api(
        "POST", "/runs", {"job": "nightly-report", "parameters": {"day": "2026-11-20"}, "client_token": "t1"}
    )

    assert (status, again_status) == (201, 200)
    assert first["run_id"] == again["run_id"]
    assert (first["created"], again["created"]) == (True, False)
    _, run = api("GET", f"/runs/{first['run_id']}")
    assert run["trigger"]["source"] == f"manual by {CALLER}"
    assert run["arguments"] == {"day": "2026-11-20"}
    assert run["status"] == "PENDING"


def test_get_runs_pages_newest_first_with_filters(api: Any) -> None:
    run_ids = [start(api, f"token-{i}") for i in range(5)]
    status, page = api("GET", "/runs", query={"job": "nightly-report", "status": "pending", "max_results": "3"})
    assert status == 200
    assert [run["run_id"] for run in page["runs"]] == run_ids[::-1][:3]
    status, rest = api(
        "GET", "/runs", query={"job": "nightly-report", "status": "pending", "next_token": page["next_token"]}
    )
    assert [run["run_id"] for run in rest["runs"]] == run_ids[::-1][3:]
    assert rest["next_token"] is None


def test_post_runs_stop_stops_each_id_or_says_why_not(api: Any) -> None:
    run_id = start(api)
    unknown = "nightly-report-ffffffffffffffffffff"
    status, result = api("POST", "/runs/stop", {"run_ids": [run_id, unknown]})
    assert status == 200
    assert [(run["run_id"], run["status"]) for run in result["stopped"]] == [(run_id, "STOPPED")]
    assert [(error["run_id"], error["code"]) for error in result["errors"]] == [(unknown, "NotFound")]
    status, again = api("POST", "/runs/stop", {"run_ids": [run_id]})
    assert (status, again["errors"][0]["message"]) == (200, "already STOPPED")


def test_post_retry_starts_a_run_naming_the_previous_one(api: Any) -> None:
    run_id = start(api)
    api("POST", "/runs/stop", {"run_ids": [run_id]})
    status, retried = api("POST", f"/runs/{run_id}/retry", {"client_token": "retry-1"})
    again_status, again = api("POST", f"/runs/{run_id}/retry", {"client_token": "retry-1"})
    assert (status, again_status) == (201, 200)
    assert retried["run_id"] == again["run_id"] != run_id
    _, run = api("GET", f"/runs/{retried['run_id']}")
    assert (run["retry_of"], run["trigger"]["type"]) == (run_id, "retry")


def test_every_template_route_reaches_its_handler(api: Any) -> None:
    for method, path in template_routes():
        concrete = re.sub(r"\{[a-z_]+\}", "nightly-report", path)
        status, body = api(method, concrete, {} if method == "POST" else None)
        assert not body.get("message", "").startswith("no route"), (method, path)
        assert status != 500, (method, path, body)


def test_responses_are_json_as_http_api_expects(handler: Any) -> None:
    response = handler(http_event("GET", "/jobs"), LambdaContext())
    assert set(response) == {"statusCode", "headers", "body", "isBase64Encoded"}
    assert (response["headers"], response["isBase64Encoded"]) == ({"Content-Type": "application/json"}, False)
    assert json.loads(response["body"])["jobs"]


def test_a_named_stage_and_a_base64_body_reach_the_route(handler: Any) -> None:
    body = json.dumps({"job": "nightly-report", "client_token": "b64"}).encode()
    event = http_event("POST", "/runs", base64.b64encode(body).decode(), stage="prod")
    response = handler({**event, "isBase64Encoded": True}, LambdaContext())
    assert response["statusCode"] == 201, response
    run_id = json.loads(response["body"])["run_id"]
    shown = handler(http_event("GET", f"/runs/{run_id}", stage="prod"), LambdaContext())
    assert json.loads(shown["body"])["trigger"]["source"] == f"manual by {CALLER}"


def test_a_broken_base64_body_is_a_400(handler: Any) -> None:
    event = {**http_event("POST", "/runs", "not base64!"), "isBase64Encoded": True}
    response = handler(event, LambdaContext())
    assert (response["statusCode"], json.loads(response["body"])["message"]) == (400, "the request body is not JSON")


@pytest.mark.parametrize(("method", "path"), [("DELETE", "/runs"), ("GET", "/runs/a/b"), ("GET", "/nope")])
def test_a_request_no_route_takes_is_a_404_saying_so(api: Any, method: str, path: str) -> None:
    status, error = api(method, path)
    assert (status, error["code"], error["message"]) == (
        404,
        "NotFound",
        f"no route {method} {path}: docs/API.md lists the routes",
    )


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("method", "path", "body", "query", "status", "message"),
    [
        ("GET", "/runs/nightly-report-ffffffffffffffffffff", None, None, 404, "no run 'nightly-report-ffff"),
        ("GET", "/jobs/nope", None, None, 404, "unknown job 'nope'"),
        ("GET", "/runs", None, {"status": "DONE"}, 400, "unknown status 'DONE'"),
        ("GET", "/runs", None, {"next_token": "garbage!"}, 400, "malformed next_token"),
        ("GET", "/runs", None, {"max_results": "500"}, 400, "max_results must be from 1 to 200, got 500"),
        ("GET", "/runs", None, {"job": "nope"}, 400, "unknown job 'nope'"),
        ("GET", "/runs", None, {"owner": "me"}, 400, "unknown query parameters ['owner']"),
        ("POST", "/runs/stop", {"run_ids": [f"nightly-report-{i:020x}" for i in range(26)]}, None, 400, "got 26"),
        ("POST", "/runs/stop", {"run_ids": []}, None, 400, "stop takes 1 to 25 run ids per call, got 0"),
        ("POST", "/runs/stop", {}, None, 400, "invalid request body: run_ids: Field required"),
        ("POST", "/runs", "{not json", None, 400, "the request body is not JSON"),
        ("POST", "/runs", {"job": "nope"}, None, 400, "unknown job 'nope'"),
        ("POST", "/runs", {"job": "nightly-report", "parameters": {"colour": "red"}}, None, 400, "does not declare"),
        ("POST", "/runs", {"job": "nightly-report", "parameters": {"day": 20}}, None, 400, "parameters.day"),
        ("POST", "/runs", {"job": "nightly-report", "priority": 1}, None, 400, "priority: Extra inputs"),
        ("POST", "/runs", {"job": "nightly-report", "client_token": "a b"}, None, 400, "client_token must be"),
        ("POST", "/runs/nightly-report-ffffffffffffffffffff/retry", {}, None, 404, "no run"),
        ("POST", "/fanouts", {"job": "nightly-report", "items": [{}]}, None, 400, "it takes no fan-outs"),
        ("POST", "/fanouts", {"job": "nightly-report"}, None, 400, "give exactly one of items"),
        ("POST", "/fanouts", {"job": "csv-word-count", "manifest": "http://x"}, None, 400, "manifest: String should"),
        ("GET", "/fanouts/csv-word-count-ffffffffffffffffffff", None, None, 404, "no fan-out"),
        ("POST", "/fanouts/csv-word-count-ffffffffffffffffffff/stop", {}, None, 404, "no fan-out"),
        ("GET", "/fanouts", None, {"max_results": "0"}, 400, "max_results must be from 1 to 200"),
        ("GET", "/fanouts", None, {"next_token": "garbage!"}, 400, "malformed next_token"),
    ],
)
def test_bad_requests_get_a_4xx_with_the_reason(
    api: Any, method: str, path: str, body: Any, query: dict[str, str] | None, status: int, message: str
) -> None:
    got, error = api(method, path, body, query)
    assert got == status
    assert message in error["message"]
    assert error["code"]


def test_conflicts_are_409(api: Any) -> None:
    run_id = start(api, "token-1", parameters={"day": "2026-11-20"})
    status, error = api(
        "POST", "/runs", {"job": "nightly-report", "parameters": {"day": "2026-11-21"}, "client_token": "token-1"}
    )
    assert (status, error["code"]) == (409, "Conflict")
    status, error = api("POST", f"/runs/{run_id}/retry", {})
    assert (status, error["code"]) == (409, "Conflict")
    assert f"run {run_id} is PENDING" in error["message"]


# ---------------------------------------------------------------- template
def template_routes() -> set[tuple[str, str]]:
    events = resource("ApiFunction")["Properties"]["Events"].values()
    return {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events if e["Type"] == "HttpApi"}


def test_the_template_routes_are_the_documented_ones_behind_iam_auth() -> None:
    assert template_routes() == {
        ("GET", "/jobs"),
        ("GET", "/jobs/{name}"),
        ("POST", "/runs"),
        ("GET", "/runs"),
        ("GET", "/runs/{run_id}"),
        ("POST", "/runs/stop"),
        ("POST", "/runs/{run_id}/retry"),
        ("POST", "/fanouts"),
        ("GET", "/fanouts"),
        ("GET", "/fanouts/{fanout_id}"),
        ("POST", "/fanouts/{fanout_id}/stop"),
    }
    events = resource("ApiFunction")["Properties"]["Events"].values()
    assert {str(e["Properties"]["ApiId"]) for e in events} == {str({"Ref": "OperatorApi"})}
    assert all("Auth" not in e["Properties"] for e in events)  # the API's default: AWS_IAM
    auth = resource("OperatorApi")["Properties"]["Auth"]
    assert auth == {"EnableIamAuthorizer": True, "DefaultAuthorizer": "AWS_IAM"}
    documented = (ROOT / "docs" / "API.md").read_text()
    for method, path in template_routes():
        assert f"`{method} {path}`" in documented, f"docs/API.md lacks {method} {path}"
    assert "OperatorApiUrl" in template()["Outputs"]


def test_the_api_function_has_exactly_its_permissions() -> None:
    allowed: dict[str, set[str]] = {}
    for policy in resource("ApiFunction")["Properties"]["Policies"]:
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for action in actions:
                allowed.setdefault(action, set()).update(map(str, resources))
    table = str({"Fn::GetAtt": ["RunTable", "Arn"]})
    batch = "arn:${AWS::Partition}:batch:${AWS::Region}:${AWS::AccountId}:"
    jobs = {str({"Fn::Sub": batch + "job/*"}), str({"Fn::Sub": batch + "service-job/*"})}
    states = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:"
    machines, executions = (
        f"{states}stateMachine:${{AWS::StackName}}-run-*",
        f"{states}execution:${{AWS::StackName}}-run-*:*",
    )
    assert allowed == {
        "dynamodb:GetItem": {table},
        "dynamodb:BatchGetItem": {table},
        "dynamodb:PutItem": {table},
        "dynamodb:UpdateItem": {table},
        "dynamodb:Query": {str({"Fn::Sub": "${RunTable.Arn}/index/*"})},
        "states:StartExecution": {str({"Fn::Sub": machines})},
        "states:StopExecution": {str({"Fn::Sub": executions})},
        "batch:TerminateJob": jobs,
        "batch:TerminateServiceJob": jobs,
        "sagemaker:StopProcessingJob": {
            str({"Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:processing-job/*"})
        },
        "glue:GetJobRuns": {str({"Fn::Sub": "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:job/*"})},
        "glue:BatchStopJobRun": {str({"Fn::Sub": "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:job/*"})},
        "s3:GetObject": {str({"Fn::Sub": "${RunDataBucket.Arn}/trigger-events/*"})},
        "s3:PutObject": {
            str({"Fn::Sub": "${RunDataBucket.Arn}/trigger-events/*"}),
            str({"Fn::Sub": "${RunDataBucket.Arn}/fanout-items/*"}),
        },
        "s3:DeleteObject": {str({"Fn::Sub": "${RunDataBucket.Arn}/trigger-events/*"})},
        "sqs:SendMessage": {str({"Fn::GetAtt": ["FanoutRequestQueue", "Arn"]})},
    }
