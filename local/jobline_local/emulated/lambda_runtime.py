"""The runtime inside one local Lambda worker process (a warm execution environment).

Run by the local Lambda service as `python -u -c <bootstrap>` with the function's directory as
the working directory and the function's environment. Protocol, one JSON object per line:
the worker writes {"ready": ..., "init_error": ...} once, then for each request line
{"request_id", "payload", "deadline_ms", "function_arn"} it writes {"result"} or {"error"}.
Everything the handler prints goes to the function's log (stderr of this process).
This module imports nothing from jobline_local: only the standard library and the function.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time
import traceback
from typing import Any


class LambdaContext:
    """The attributes of awslambdaric's LambdaContext."""

    def __init__(self, request_id: str, deadline_ms: int, function_arn: str) -> None:
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = function_arn
        self.client_context = None
        self.identity = None
        self.tenant_id = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def log(self, message: str) -> None:
        sys.stdout.write(message)


def _error(error: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorMessage": str(error),
        "errorType": error_type or type(error).__name__,
        "requestId": "",
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


def _log_error(error: dict[str, Any]) -> None:
    # Lambda's Python runtime logs an unhandled error like this before reporting it.
    print(f"[ERROR] {error['errorType']}: {error['errorMessage']}", flush=True)
    print("Traceback (most recent call last):\n" + "".join(error["stackTrace"]), end="", flush=True)


def _watch_parent() -> None:
    parent = os.getppid()
    while True:
        time.sleep(1)
        if os.getppid() != parent:  # the local stack is gone: so is this environment
            os._exit(0)


def main() -> None:
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the handler's prints go to the function's log
    threading.Thread(target=_watch_parent, daemon=True).start()

    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    handler: Any = None
    init_error: dict[str, Any] | None = None
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except ImportError as error:
        init_error = _error(error, "Runtime.ImportModuleError")
        init_error["errorMessage"] = f"Unable to import module '{module_name}': {error}"
    except AttributeError as error:
        init_error = _error(error, "Runtime.HandlerNotFound")
        init_error["errorMessage"] = f"Handler '{function_name}' missing on module '{module_name}'"
    except Exception as error:
        init_error = _error(error)
    if init_error:
        _log_error(init_error)
    channel.write(json.dumps({"ready": True, "init_error": init_error}) + "\n")

    for line in sys.stdin:
        request = json.loads(line)
        request_id = request["request_id"]
        started = time.monotonic()
        print(f"START RequestId: {request_id} Version: $LATEST", flush=True)
        exit_after = False
        if init_error:
            response: dict[str, Any] = {"error": init_error}
        else:
            context = LambdaContext(request_id, request["deadline_ms"], request["function_arn"])
            try:
                result = handler(request["payload"], context)
                try:
                    response = {"result": json.dumps(result)}
                except (TypeError, ValueError) as error:
                    response = {"error": _error(error, "Runtime.MarshalError")}
                    _log_error(response["error"])
            except SystemExit as error:
                response = {"error": _error(error, "Runtime.ExitError")}
                _log_error(response["error"])
                exit_after = True
            except Exception as error:
                response = {"error": _error(error)}
                _log_error(response["error"])
        duration = (time.monotonic() - started) * 1000
        print(f"END RequestId: {request_id}", flush=True)
        print(
            f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\t"
            f"Memory Size: {os.environ.get('AWS_LAMBDA_FUNCTION_MEMORY_SIZE')} MB",
            flush=True,
        )
        channel.write(json.dumps(response) + "\n")
        if exit_after:
            os._exit(1)


if __name__ == "__main__":
    main()
