"""Warm Lambda execution environments: a Worker is one process running lambda_runtime for one
function; a FunctionPool keeps a function's workers within its concurrency."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobline_local.deploy.deployment import FunctionSpec

if TYPE_CHECKING:
    from jobline_local.emulated.lambda_service import LambdaService


BOOTSTRAP = "import runpy, sys; runpy.run_path(sys.argv.pop(1), run_name='__main__')"
RUNTIME_FILE = Path(__file__).with_name("lambda_runtime.py")
INIT_TIMEOUT_SECONDS = 60  # Lambda allows 10 s of init; two busy cores importing boto3 need more


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
