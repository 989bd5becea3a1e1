"""Local compute for AWS Batch: a submitted job runs its catalog job's `local_command` as a
process with the environment its container would get, moves through Batch's statuses (seen by
DescribeJobs and so by Step Functions' `.sync`), honours the attempt timeout and TerminateJob,
and puts a `Batch Job State Change` event on the default bus at every change, as Batch does."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from jobline_local.activity import Activity

STATUS_REASON_EXITED = "Essential container in task exited"
STATUS_REASON_TIMEOUT = "Job attempt duration exceeded timeout"
STOP_GRACE_SECONDS = 2.0
JOB_TAG = "jobline:job"

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """The job process dies with the thread that watches it: no job outlives the local stack."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.setpgid(0, 0)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


class LocalBatch:
    def __init__(
        self,
        account_id: str,
        region: str,
        catalog_path: Path,
        log_dir: Path,
        base_env: dict[str, str],
        clients: Any,
        activity: Activity,
        slots: int = 4,
    ) -> None:
        self.account_id = account_id
        self.region = region
        self.catalog_path = catalog_path
        self.log_dir = log_dir
        self.base_env = base_env
        self.clients = clients
        self.activity = activity
        self._slots = threading.BoundedSemaphore(slots)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        self._catalog: tuple[float, Any] | None = None
        self._log_groups: set[str] = set()
        self.active = 0

    # ------------------------------------------------------------ moto hook
    def submit(self, job: Any) -> None:
        """Called by moto's SubmitJob (moto_adaptations: batch job start) with the new Job."""
        with self._lock:
            self.active += 1
        threading.Thread(target=self._run, args=(job,), name=f"batch-{job.job_id}", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            running = list(self._running.values())
        for proc in running:
            self._kill(proc)

    # ------------------------------------------------------------ one job
    def _run(self, job: Any) -> None:
        try:
            self._lifecycle(job)
        except Exception as error:
            self.activity.note("batch", f"{job.job_name}: local compute error {error!r}", logging.ERROR)
            if not job.job_stopped:
                self._finish(job, None, f"jobline local: {error}")
        finally:
            with self._lock:
                self.active -= 1

    def _lifecycle(self, job: Any) -> None:
        self._move(job, "PENDING")
        self._move(job, "RUNNABLE")
        while not self._slots.acquire(timeout=0.2):
            if job.stop or self._stopping.is_set():
                self._finish(job, None, job.job_stopped_reason or "Terminated")
                return
        try:
            if job.stop:
                self._finish(job, None, job.job_stopped_reason or "Terminated")
                return
            self._attempt(job)
        finally:
            self._slots.release()

    def _attempt(self, job: Any) -> None:
        command, problem = self._local_command(job)
        task_id = uuid.uuid4().hex
        group, prefix = self._log_target(job)
        job.log_stream_name = f"{prefix}/default/{task_id}"
        log_path = self.log_dir / (job.log_stream_name.replace("/", "_") + ".log")
        self._move(job, "STARTING")
        if command is None:
            self._finish(job, None, "CannotStartContainerError: " + problem, attempt_started=datetime.now())
            return
        env = self._environment(job)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log_file:
            started = datetime.now()
            proc = subprocess.Popen(  # noqa: S603 - the catalog's declared local command
                command,
                cwd=self.catalog_path.parent,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
            with self._lock:
                self._running[job.job_id] = proc
            job.job_started_at = started
            self._move(job, "RUNNING")
            self.activity.note("batch", f"{job.job_name}: pid {proc.pid} runs {' '.join(command)} (log: {log_path})")
            duration = job._get_attempt_duration()
            deadline = time.monotonic() + duration if duration else None
            reason = STATUS_REASON_EXITED
            while proc.poll() is None:
                if deadline is not None and time.monotonic() >= deadline:
                    reason = STATUS_REASON_TIMEOUT
                    self._kill(proc)
                elif job.stop:
                    reason = job.job_stopped_reason or "Terminated"
                    self._kill(proc)
                elif self._stopping.is_set():
                    reason = "Terminated: the local stack stopped"
                    self._kill(proc)
                else:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(0.1)
            with self._lock:
                self._running.pop(job.job_id, None)
        code = proc.returncode
        exit_code = 128 - code if code < 0 else code  # a signal, as Docker reports it
        self._ship_logs(group, job.log_stream_name, log_path)
        self._finish(job, exit_code, reason, attempt_started=started)

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

    # ------------------------------------------------------------ statuses and events
    def _move(self, job: Any, status: str) -> None:
        job.status = status
        self._emit(job)

    def _finish(self, job: Any, exit_code: int | None, reason: str, attempt_started: datetime | None = None) -> None:
        stopped = datetime.now()
        if attempt_started is not None:
            attempt: dict[str, Any] = {
                "container": {"logStreamName": job.log_stream_name, "networkInterfaces": []},
                "startedAt": _ms(attempt_started),
                "stoppedAt": _ms(stopped),
                "statusReason": reason,
            }
            if exit_code is not None:
                attempt["container"]["exitCode"] = exit_code
            job.attempts.append(attempt)
            job.latest_attempt = attempt
        job.exit_code = exit_code
        job.job_stopped_reason = reason
        job.job_stopped_at = stopped
        job.job_stopped = True
        status = "SUCCEEDED" if exit_code == 0 and reason == STATUS_REASON_EXITED else "FAILED"
        job.status = status
        self.activity.note(
            "batch",
            f"{job.job_name}: {status} ({reason}" + (f", exit code {exit_code})" if exit_code is not None else ")"),
            job=job.job_name,
            status=status,
        )
        self._emit(job)

    def detail(self, job: Any) -> dict[str, Any]:
        """The event's detail: DescribeJobs' JobDetail, as AWS documents it."""
        detail = job.describe()
        definition = job.job_definition
        detail.setdefault("retryStrategy", {"attempts": 1, "evaluateOnExit": []})
        if definition.retry_strategy:
            detail["retryStrategy"] = {
                "attempts": int(definition.retry_strategy.get("attempts", 1)),
                "evaluateOnExit": definition.retry_strategy.get("evaluateOnExit", []),
            }
        if definition.platform_capabilities:
            detail["platformCapabilities"] = definition.platform_capabilities
        detail["propagateTags"] = bool(definition.propagate_tags)
        return detail

    def _emit(self, job: Any) -> None:
        from moto.events.models import events_backends

        events_backends[self.account_id][self.region].put_events(
            [
                {
                    "Source": "aws.batch",
                    "DetailType": "Batch Job State Change",
                    "Detail": json.dumps(self.detail(job), default=str),
                    "Resources": [job.arn],
                    "EventBusName": "default",
                    "Time": time.time(),
                }
            ]
        )
        self.activity.count(f"batch.events.{job.status}")

    # ------------------------------------------------------------ what runs, and how
    def _catalog_job(self, name: str) -> Any:
        from jobline.catalog import load_catalog

        mtime = self.catalog_path.stat().st_mtime
        if self._catalog is None or self._catalog[0] != mtime:
            self._catalog = (mtime, load_catalog(self.catalog_path))
        return self._catalog[1].get(name)

    def _local_command(self, job: Any) -> tuple[list[str] | None, str]:
        tags = job.backend.list_tags_for_resource(job.arn)
        name = tags.get(JOB_TAG)
        if not name:
            return None, f"job {job.job_name} has no {JOB_TAG} tag: the local stack runs catalog jobs only"
        try:
            catalog_job = self._catalog_job(name)
        except Exception as error:
            return None, str(error)
        if not catalog_job.local_command:
            return None, f"job {name!r} declares no local_command in {self.catalog_path}"
        return job._add_parameters_to_command(list(catalog_job.local_command)), ""

    def _environment(self, job: Any) -> dict[str, str]:
        container = {e["name"]: e["value"] for e in job._get_container_property("environment", [])}
        return {
            **self.base_env,
            "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE",
            "AWS_BATCH_JOB_ATTEMPT": str(len(job.attempts) + 1),
            "AWS_BATCH_JQ_NAME": job.job_queue.name,
            "AWS_BATCH_CE_NAME": job.job_queue.environments[0].name if job.job_queue.environments else "",
            **container,
        }

    def _log_target(self, job: Any) -> tuple[str, str]:
        """awslogs group and stream prefix of the job definition (Batch's defaults otherwise)."""
        config = (job.job_definition.container_properties or {}).get("logConfiguration", {})
        options = config.get("options", {}) if config.get("logDriver") == "awslogs" else {}
        return options.get("awslogs-group", "/aws/batch/job"), options.get(
            "awslogs-stream-prefix", job.job_definition.name
        )

    def _ship_logs(self, group: str, stream: str, path: Path) -> None:
        """The job's output, in CloudWatch Logs too (as the awslogs driver would put it)."""
        logs = self.clients.client("logs")
        try:
            lines = path.read_text(errors="replace").splitlines() or ["(no output)"]
            if group not in self._log_groups:
                with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                    logs.create_log_group(logGroupName=group)
                self._log_groups.add(group)
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
            now = int(time.time() * 1000)
            for start in range(0, len(lines), 5000):
                logs.put_log_events(
                    logGroupName=group,
                    logStreamName=stream,
                    logEvents=[{"timestamp": now, "message": line or " "} for line in lines[start : start + 5000]],
                )
        except Exception as error:
            self.activity.note("batch", f"could not ship {path} to CloudWatch Logs: {error!r}", logging.DEBUG)
