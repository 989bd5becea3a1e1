"""Lambda Invoke routed to the local Lambda service (emulated.lambda_service), against moto's
original."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from moto import mock_aws

from jobline_local.adaptations import hooks
from tests.aws_resources import REGION
from tests.local.moto_support import client


def dummy_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return 'ran'\n")
    return buffer.getvalue()


def test_lambda_invoke() -> None:
    with mock_aws():
        role = client("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lam = client("lambda")
        lam.create_function(
            FunctionName="f", Runtime="python3.11", Role=role, Handler="app.handler", Code={"ZipFile": dummy_zip()}
        )
        pristine = lam.invoke(FunctionName="f", Payload=b"{}")["Payload"].read()
        assert pristine != b'"ran"', "moto now runs Lambda code without Docker"

        calls: list[tuple[str, Any, str]] = []

        def run(arn: str, payload: Any, invocation_type: str) -> tuple[bytes, str | None, str]:
            calls.append((arn, payload, invocation_type))
            return b'{"errorType": "ValueError"}', "Unhandled", "log line"

        hooks["lambda_invoke"] = run
        response = lam.invoke(FunctionName="f", Payload=json.dumps({"a": 1}).encode(), LogType="Tail")
        assert response["FunctionError"] == "Unhandled"
        assert json.loads(response["Payload"].read()) == {"errorType": "ValueError"}
        assert calls == [(f"arn:aws:lambda:{REGION}:123456789012:function:f", {"a": 1}, "RequestResponse")]
        assert lam.invoke(FunctionName="f", InvocationType="Event", Payload=b"{}")["StatusCode"] == 202
        assert calls[-1][2] == "Event"
