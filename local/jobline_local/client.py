"""The Python API: start the local stack as a child process, use it, stop it.

    with LocalStack(catalog=Path("examples/demo-jobs.yaml")) as stack:
        stack.client("s3").put_object(Bucket=stack.output("InputBucketName"), Key="incoming/a.csv", Body=b"...")
        rows = stack.runs()

The child is `python -m jobline_local`; it exits with this process (and takes every function
worker and job process with it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from jobline_local.runs import read_runs

# The local stack accepts any credentials; these are the ones its own processes use.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def state_dir_owner(state_dir: Path) -> int | None:
    """The pid of a live local stack using `state_dir`, if any."""
    try:
        pid = int(json.loads((state_dir / "stack.json").read_text())["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if pid != os.getpid() else None


class StackFailed(RuntimeError):
    pass


class LocalStack:
    def __init__(
        self,
        *,
        catalog: Path | None = None,
        template: Path | None = None,
        state_dir: Path | None = None,
        port: int = 0,
        region: str = "us-east-1",
        clock_speed: float = 1.0,
        clock_start: str | None = None,
        lambda_concurrency: int = 2,
        job_slots: int = 4,
        parameters: dict[str, str] | None = None,
        verbose: bool = False,
        user_agent_appid: str | None = None,
        launcher: list[str] | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.state_dir = (state_dir or Path.cwd() / ".local-stack" / "api").resolve()
        self.region = region
        self.user_agent_appid = user_agent_appid
        # What starts the stack (the bench runs it through its meter, maybe from another tree's worktree).
        self.launcher = launcher or [sys.executable, "-m", "jobline_local"]
        self.env = env
        self.cwd = cwd
        self.args = ["--state-dir", str(self.state_dir), "--port", str(port), "--region", region]
        self.args += ["--clock-speed", str(clock_speed), "--lambda-concurrency", str(lambda_concurrency)]
        self.args += ["--job-slots", str(job_slots)]
        if catalog:
            self.args += ["--catalog", str(Path(catalog).resolve())]
        if template:
            self.args += ["--template", str(Path(template).resolve())]
        if clock_start:
            self.args += ["--clock-start", clock_start]
        for key, value in (parameters or {}).items():
            self.args += ["--parameter", f"{key}={value}"]
        if verbose:
            self.args.append("--verbose")
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self._clients: dict[str, Any] = {}

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 120) -> LocalStack:
        if state_dir_owner(self.state_dir) is not None:  # another stack runs there: use a dir of our own
            self.state_dir = self.state_dir.with_name(f"{self.state_dir.name}-{os.getpid()}")
            self.args[self.args.index("--state-dir") + 1] = str(self.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.console = self.state_dir.with_name(self.state_dir.name + ".console.log")
        with open(self.console, "wb") as console:
            self.proc = subprocess.Popen(  # noqa: S603 - our own module
                [*self.launcher, *self.args, "--exit-with-parent", str(os.getpid())],
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=self.env,
                cwd=self.cwd,
            )
        ready = self.state_dir / "stack.json"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StackFailed(f"the local stack exited ({self.proc.returncode}):\n{self.console_text()}")
            try:
                info = json.loads(ready.read_text())
                if info.get("pid") == self.proc.pid:
                    self.info = info
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        self.stop()
        raise StackFailed(f"the local stack did not start in {timeout} s:\n{self.console_text()}")

    def console_text(self, tail: int = 8000) -> str:
        try:
            return self.console.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ using it
    @property
    def endpoint(self) -> str:
        return self.info["endpoint"]

    def output(self, name: str) -> Any:
        return self.info["outputs"][name]

    def environ(self) -> dict[str, str]:
        """Environment variables that point any AWS client (CLI, SDKs) at the stack."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def client(self, service: str) -> Any:
        if service not in self._clients:
            config = Config(user_agent_appid=self.user_agent_appid, retries={"max_attempts": 3, "mode": "standard"})
            self._clients[service] = boto3.client(
                service,
                endpoint_url=self.endpoint,
                region_name=self.region,
                config=config,
                **LOCAL_CREDENTIALS,
            )
        return self._clients[service]

    def control(self, path: str) -> Any:
        import requests

        response = requests.get(f"{self.endpoint}/_jobline/{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def status(self) -> dict[str, Any]:
        return self.control("status")

    def activity(self, after: int = 0) -> list[dict[str, Any]]:
        return self.control(f"activity?after={after}")

    def runs(self, attributes: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Every run row of the run table (only `attributes` of each, when named), newest last."""
        return read_runs(self.client("dynamodb"), self.output("RunTableName"), attributes)

    def wait_for(self, predicate: Any, timeout: float, interval: float = 0.5, what: str = "condition") -> Any:
        """Poll `predicate()` until it returns something truthy; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"waited {timeout} s for {what}")
            if self.proc is not None and self.proc.poll() is not None:
                raise StackFailed(f"the local stack exited:\n{self.console_text()}")
            time.sleep(interval)
