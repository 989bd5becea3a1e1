"""What every local compute of a job shares (Batch, Batch service jobs, SageMaker processing, Glue):
the catalog job's `local_command` run as a process that dies with the stack, within a number of
slots, its output shipped to CloudWatch Logs, and the service's events put on the default bus."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from jobline_local.activity import Activity

STOP_GRACE_SECONDS = 2.0
POLL_SECONDS = 0.1
_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.setpgid(0, 0)


# util-linux's setpriv (in every Debian and Ubuntu, as util-linux is essential there).
SETPRIV = shutil.which("setpriv")


def spawn(command: list[str], cwd: Path, env: dict[str, str], log_file: IO[bytes]) -> subprocess.Popen[bytes]:
    """A job's process: in its own process group, killed when the stack's process ends, its output
    in `log_file`. With setpriv, setpriv sets the death signal and execs the command, so Popen can
    vfork: a fork of the stack's process (a gigabyte and thousands of threads in a burst) copies its
    page tables while holding the GIL, an eighth of the server's time in an 800-file burst. The
    command is looked up first, so a missing one fails here as Popen's own would."""
    name = command[0]
    if "/" in name:  # a path, as Popen resolves it: from `cwd`
        executable = str(cwd / name) if os.access(cwd / name, os.X_OK) else None
    else:
        executable = shutil.which(name, path=env.get("PATH"))
    streams: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": log_file, "stderr": subprocess.STDOUT}
    # The commands (S603) are the catalog's declared local commands.
    if SETPRIV is None or executable is None:
        return subprocess.Popen(command, cwd=cwd, env=env, preexec_fn=die_with_parent, **streams)  # noqa: S603
    argv = [SETPRIV, "--pdeathsig", "KILL", "--", executable, *command[1:]]
    return subprocess.Popen(argv, cwd=cwd, env=env, process_group=0, **streams)  # noqa: S603


def utcnow() -> datetime:
    """moto keeps naive UTC datetimes."""
    return datetime.now(UTC).replace(tzinfo=None)


def epoch_millis(when: datetime | None = None) -> int:
    when = when or utcnow()
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


class JobFailedToStart(Exception):
    pass


class FifoSlots:
    """A compute's slots, served in the order jobs joined the line: a Batch job queue without a
    scheduling policy "defaults to a first-in, first-out (FIFO) strategy" (Batch user guide,
    docs.aws.amazon.com/batch/latest/userguide/job_scheduling.html). A semaphore polled by each
    job's thread served whichever thread woke first."""

    def __init__(self, count: int) -> None:
        self._free = count
        self._line: deque[str] = deque()
        self._changed = threading.Condition()

    def join(self, key: str) -> None:
        with self._changed:
            if key not in self._line:
                self._line.append(key)

    def take(self, key: str, cancelled: Callable[[], bool]) -> bool:
        """Waits for `key`'s turn (joining the line now if it has not yet) and a free slot; False,
        out of the line, once `cancelled()`."""
        with self._changed:
            if key not in self._line:
                self._line.append(key)
            while not (self._free and self._line[0] == key):
                if cancelled():
                    self._leave(key)
                    return False
                self._changed.wait(0.2)
            self._line.popleft()
            self._free -= 1
            self._changed.notify_all()
            return True

    def release(self) -> None:
        with self._changed:
            self._free += 1
            self._changed.notify_all()

    def leave(self, key: str) -> None:
        with self._changed:
            self._leave(key)

    def _leave(self, key: str) -> None:
        if key in self._line:
            self._line.remove(key)
            self._changed.notify_all()


class LocalService:
    """What the stand-ins share: the catalog, processes, their logs and events."""

    component = "local"

    def __init__(
        self,
        account_id: str,
        region: str,
        catalog_path: Path,
        log_dir: Path,
        base_env: dict[str, str],
        clients: Any,
        activity: Activity,
        slots: int = 2,
        clock_speed: float = 1.0,
    ) -> None:
        self.account_id = account_id
        self.region = region
        self.catalog_path = catalog_path
        self.log_dir = log_dir
        self.base_env = base_env
        self.clients = clients
        self.activity = activity
        self.clock_speed = clock_speed
        self._slots = FifoSlots(slots)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        self._catalog: tuple[float, Any] | None = None
        self.active = 0
        log_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------ lifecycle
    def _start_thread(self, name: str, target: Callable[[], None], join_line: bool = True) -> None:
        """Runs `target` for the job `name` on its own thread. With `join_line`, the job joins the
        slots' line now, in the caller's (the submit's) order, not when its thread gets to it."""
        if join_line:
            self._slots.join(name)

        def run() -> None:
            try:
                target()
            except Exception as error:
                self.activity.note(self.component, f"{name}: local compute error {error!r}", logging.ERROR)
            finally:
                self._slots.leave(name)
                with self._lock:
                    self.active -= 1

        with self._lock:
            self.active += 1
        threading.Thread(target=run, name=f"{self.component}-{name}", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            running = list(self._running.values())
        for proc in running:
            self._kill(proc)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _acquire_slot(self, name: str, cancelled: Callable[[], bool]) -> bool:
        return self._slots.take(name, lambda: cancelled() or self.stopping)

    # ------------------------------------------------------------ what runs
    def catalog_job(self, name: str | None) -> Any:
        from jobline.catalog import load_catalog

        if not name:
            raise JobFailedToStart("the job names no catalog job: the local stack runs catalog jobs only")
        mtime = self.catalog_path.stat().st_mtime
        if self._catalog is None or self._catalog[0] != mtime:
            self._catalog = (mtime, load_catalog(self.catalog_path))
        try:
            job = self._catalog[1].get(name)
        except Exception as error:
            raise JobFailedToStart(str(error)) from None
        if not job.local_command:
            raise JobFailedToStart(f"job {name!r} declares no local_command in {self.catalog_path}")
        return job

    def run_process(
        self,
        key: str,
        command: list[str],
        env: dict[str, str],
        log_path: Path,
        deadline: float | None,
        stop_reason: Callable[[], str | None],
    ) -> tuple[int, str | None]:
        """Run to the end; returns (exit code, why it was killed: "timeout", a stop reason, or None)."""
        with open(log_path, "wb") as log_file:
            proc = spawn(command, self.catalog_path.parent, {**self.base_env, "PYTHONUNBUFFERED": "1", **env}, log_file)
            with self._lock:
                self._running[key] = proc
            self.activity.note(self.component, f"{key}: pid {proc.pid} runs {' '.join(command)} (log: {log_path})")
            killed: str | None = None
            try:
                while proc.poll() is None:
                    if deadline is not None and time.monotonic() >= deadline:
                        killed = "timeout"
                    elif (reason := stop_reason()) is not None:
                        killed = reason
                    elif self.stopping:
                        killed = "Terminated: the local stack stopped"
                    if killed:
                        self._kill(proc)
                        break
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(POLL_SECONDS)
            finally:
                with self._lock:
                    self._running.pop(key, None)
        code = proc.wait()
        return (128 - code if code < 0 else code), killed

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        for sig, wait in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    @staticmethod
    def last_line(path: Path, default: str) -> str:
        with contextlib.suppress(OSError):
            lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
            if lines:
                return lines[-1][:1024]
        return default

    def ship_logs(self, group: str, stream: str, path: Path) -> None:
        """The job's output in CloudWatch Logs too, where the service would put it."""
        logs = self.clients.client("logs")
        try:
            lines = path.read_text(errors="replace").splitlines() or ["(no output)"]
            with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                logs.create_log_group(logGroupName=group)
            with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                logs.create_log_stream(logGroupName=group, logStreamName=stream)
            now = int(time.time() * 1000)
            for start in range(0, len(lines), 5000):
                logs.put_log_events(
                    logGroupName=group,
                    logStreamName=stream,
                    logEvents=[{"timestamp": now, "message": line or " "} for line in lines[start : start + 5000]],
                )
        except Exception as error:
            self.activity.note(self.component, f"could not ship {path} to CloudWatch Logs: {error!r}", logging.DEBUG)

    # ------------------------------------------------------------ events
    def emit(self, source: str, detail_type: str, detail: dict[str, Any], resources: list[str]) -> None:
        from moto.events.models import events_backends

        events_backends[self.account_id][self.region].put_events(
            [
                {
                    "Source": source,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail, default=str),
                    "Resources": resources,
                    "EventBusName": "default",
                    "Time": time.time(),
                }
            ]
        )
        self.activity.count(f"{self.component}.events.{detail_type}")
