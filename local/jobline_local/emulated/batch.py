"""AWS Batch container jobs, locally. moto keeps the API, with the adaptations below (a submitted
job goes to the local compute, not to moto's own thread; DescribeJobs describes without mutating).
LocalBatch runs the job's catalog `local_command` as a process with the environment its container
would get, moves it through Batch's statuses (seen by DescribeJobs and so by Step Functions'
`.sync`), honours the attempt timeout and TerminateJob, and puts a `Batch Job State Change` event
on the default bus at every change, as Batch does."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import time
import uuid
from datetime import datetime
from typing import Any

from jobline_local.adaptations.hooks import hooks
from jobline_local.adaptations.patching import replace
from jobline_local.emulated.compute import JobFailedToStart, LocalService, spawn

STATUS_REASON_EXITED = "Essential container in task exited"
STATUS_REASON_TIMEOUT = "Job attempt duration exceeded timeout"
JOB_TAG = "jobline:job"


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def adapt_batch_job_start() -> None:
    """moto 5.2.5 runs each submitted Batch job on its own thread (Docker, or nothing at all) and
    moves it SUBMITTED -> SUCCEEDED as it sees fit. Hand the job to the `batch_job` hook (the
    local compute) instead, so that nothing but the local compute moves it."""
    from moto.batch.models import Job

    original = Job.start

    def start(self: Any) -> None:
        run = hooks["batch_job"]
        if run is None:
            original(self)
        else:
            run(self)

    replace(Job, "start", start)


def adapt_batch_job_description() -> None:
    """moto 5.2.5's Job description (DescribeJobs, and so `.sync`) appends the job definition's
    environment and AWS_BATCH_JOB_ID to the submitted overrides on every call, so the list grows
    with each describe, and drops container.exitCode/reason of a stopped job. Describe without
    mutating and keep the exit code and reason, as AWS does."""
    from moto.batch.models import Job

    original_property = Job._get_container_property
    original_details = Job._container_details

    def get_container_property(self: Any, p: str, default: Any) -> Any:
        if p != "environment":
            return original_property(self, p, default)
        job_env = [dict(e) for e in self.container_overrides.get("environment", [])]
        given = {e["name"] for e in job_env}
        jd_env = (self.job_definition.container_properties or {}).get("environment", [])
        job_env.extend(dict(e) for e in jd_env if e["name"] not in given)
        job_env.append({"name": "AWS_BATCH_JOB_ID", "value": self.job_id})
        return job_env

    def container_details(self: Any) -> dict[str, Any]:
        details = original_details(self)
        if self.exit_code is not None:
            details["exitCode"] = self.exit_code
        if getattr(self, "container_reason", None):
            details["reason"] = self.container_reason
        return details

    replace(Job, "_get_container_property", get_container_property)
    replace(Job, "_container_details", container_details)


class LocalBatch(LocalService):
    """AWS Batch container jobs; what every local stand-in shares lives in LocalService."""

    component = "batch"

    # ------------------------------------------------------------ moto hook
    def submit(self, job: Any) -> None:
        """Called by moto's SubmitJob (the batch_job hook of adapt_batch_job_start) with the new Job."""
        self._start_thread(job.job_id, lambda: self._run(job))

    # ------------------------------------------------------------ one job
    def _run(self, job: Any) -> None:
        try:
            self._lifecycle(job)
        except Exception as error:
            self.activity.note("batch", f"{job.job_name}: local compute error {error!r}", logging.ERROR)
            if not job.job_stopped:
                self._finish(job, None, f"jobline local: {error}")

    def _lifecycle(self, job: Any) -> None:
        self._move(job, "PENDING")
        self._move(job, "RUNNABLE")
        if not self._acquire_slot(job.job_id, lambda: bool(job.stop)):
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
            proc = spawn(command, self.catalog_path.parent, env, log_file)
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
        self.ship_logs(group, job.log_stream_name, log_path)
        self._finish(job, exit_code, reason, attempt_started=started)

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
    def _local_command(self, job: Any) -> tuple[list[str] | None, str]:
        try:
            catalog_job = self.catalog_job(job.backend.list_tags_for_resource(job.arn).get(JOB_TAG))
        except JobFailedToStart as error:
            return None, str(error)
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
