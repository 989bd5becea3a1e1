"""Where the CLI's calls go: a deployed stack (--stack), the local stack (--local), or by default the
stack the environment describes (RUN_TABLE_NAME, STATE_MACHINE_PREFIX, ... as a function sees them).

A stack's settings are read from its ApiFunction's environment, so the CLI works with exactly the
table, state machine, queues and buckets the stack's own API uses. The local stack publishes its
endpoint, region, pid and function names in <state dir>/stack.json (`jobline local` writes it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError
from pydantic import ValidationError

from jobline.catalog import load_catalog
from jobline.errors import JoblineError
from jobline.operations import Operations
from jobline.settings import Settings

API_FUNCTION = "ApiFunction"
DEFAULT_LOCAL_STATE = Path(".local-stack/local")
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class TargetError(JoblineError):
    """The stack to talk to cannot be found or read."""


class EndpointSession:
    """A boto3 session whose clients all talk to one endpoint (the local stack)."""

    def __init__(self, endpoint: str, region: str) -> None:
        self._session = boto3.session.Session(region_name=region, **LOCAL_CREDENTIALS)
        self._endpoint = endpoint
        self.region_name = region

    def client(self, service: str) -> Any:
        return self._session.client(service, endpoint_url=self._endpoint)


def connect(stack: str | None, region: str | None, profile: str | None, local: Path | None) -> Operations:
    if local is not None:
        if stack or profile:
            raise TargetError("--local talks to the local stack: leave out --stack and --profile")
        info = _local_info(local)
        session: Any = EndpointSession(info["endpoint"], info["region"])
        settings = _function_settings(session, info["functions"].get(API_FUNCTION))
    else:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        settings = _stack_settings(session, stack) if stack else _environment_settings()
    return Operations.build(settings, load_catalog(settings.catalog_path), session)


def _environment_settings() -> Settings:
    try:
        return Settings()  # type: ignore[call-arg]  # filled from the environment
    except ValidationError as error:
        missing = ", ".join(str(e["loc"][0]).upper() for e in error.errors())
        raise TargetError(f"which stack? Pass --stack NAME or --local, or set {missing}") from None


def _stack_settings(session: Any, stack: str) -> Settings:
    try:
        resource = session.client("cloudformation").describe_stack_resource(
            StackName=stack, LogicalResourceId=API_FUNCTION
        )
    except ClientError as error:
        raise TargetError(f"stack {stack!r}: {error.response['Error'].get('Message', error)}") from None
    return _function_settings(session, resource["StackResourceDetail"]["PhysicalResourceId"])


def _function_settings(session: Any, function: str | None) -> Settings:
    if not function:
        raise TargetError(f"the stack has no {API_FUNCTION}: deploy a template with the operators' API")
    config = session.client("lambda").get_function_configuration(FunctionName=function)
    variables = config.get("Environment", {}).get("Variables", {})
    return Settings(**{k.lower(): v for k, v in variables.items() if k.lower() in Settings.model_fields})


def _local_info(local: Path) -> dict[str, Any]:
    state = local / "stack.json" if local.is_dir() else local
    try:
        info = json.loads(state.read_text())
    except (OSError, ValueError):
        raise TargetError(
            f"no local stack at {state}: start one with `jobline local` (or give --local STATE_DIR)"
        ) from None
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        raise TargetError(f"the local stack of {state} (pid {info['pid']}) is not running any more") from None
    except PermissionError:
        pass  # alive, someone else's
    return info
