"""Glue job runs, locally. moto keeps the API, with the adaptation below (ExecutionClass, every
unfinished run counted, BatchStopJobRun, runs that only the local compute moves); LocalGlue runs
the job's catalog `local_command` (or its local script): STARTING -> RUNNING -> SUCCEEDED |
FAILED | TIMEOUT | STOPPING -> STOPPED, with `Glue Job State Change` at the end and `Glue Job Run
Status` once a run outlives the job's NotifyDelayAfter, as Glue sends them."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from jobline_local.adaptations.hooks import hooks
from jobline_local.adaptations.patching import add, replace
from jobline_local.emulated.compute import JobFailedToStart, LocalService, utcnow

SECONDS_PER_MINUTE = 60  # Glue counts its Timeout in minutes
GLUE_ACTIVE = ("WAITING", "STARTING", "RUNNING", "STOPPING")


def adapt_glue_job_runs() -> None:
    """moto 5.2.5's Glue job runs: StartJobRun drops ExecutionClass, MaxConcurrentRuns counts only
    STARTING and RUNNING runs, there is no BatchStopJobRun, and a run advances by itself on every
    GetJobRun. Keep ExecutionClass, count every unfinished run, add BatchStopJobRun (its
    SuccessfulSubmissions / Errors shape), and hand new runs to the `glue_job_run` hook, after
    which only the hook moves them (ErrorMessage, CompletedOn and ExecutionTime as AWS reports)."""
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.glue.exceptions import ConcurrentRunsExceededException
    from moto.glue.models import FakeJob, FakeJobRun, GlueBackend
    from moto.glue.responses import GlueResponse

    original_start = FakeJob.start_job_run

    def start_job_run(self: Any, *args: Any, **kwargs: Any) -> str:
        active = [run for run in self.job_runs if run.status in GLUE_ACTIVE]
        if len(active) >= int(self.execution_property.get("MaxConcurrentRuns", 1)):
            raise ConcurrentRunsExceededException(f"Concurrent runs exceeded for {self.name}")
        return original_start(self, *args, **kwargs)

    original_response = GlueResponse.start_job_run

    def start_job_run_response(self: Any) -> Any:
        result = original_response(self)
        job = self.glue_backend.get_job(self._get_param("JobName"))
        run = job.job_runs[-1]
        run.execution_class = self._get_param("ExecutionClass") or job.execution_class
        run.error_message = None
        hook = hooks["glue_job_run"]
        if hook is not None:
            run._transitions = []  # nothing but the hook moves it now
            run.completed_on = None
            run.jobline_managed = True
            hook(job, run)
        return result

    original_as_dict = FakeJobRun.as_dict

    def as_dict(self: Any) -> dict[str, Any]:
        described = original_as_dict(self)
        if getattr(self, "execution_class", None):
            described["ExecutionClass"] = self.execution_class
        if getattr(self, "jobline_managed", False):
            if self.completed_on is None:
                described.pop("CompletedOn", None)
            end = self.completed_on or utcnow()
            described["ExecutionTime"] = max(0, int((end - self.started_on).total_seconds()))
            if self.error_message:
                described["ErrorMessage"] = self.error_message
        return described

    def batch_stop_job_run(self: Any, job_name: str, run_ids: list[str]) -> dict[str, Any]:
        job = self.get_job(job_name)
        stopped, errors = [], []
        for run_id in run_ids:
            run = next((r for r in job.job_runs if r.job_run_id == run_id), None)
            if run is None:
                code, message = "EntityNotFoundException", f"Job run {run_id} not found."
            elif run.status not in GLUE_ACTIVE:
                code, message = "InvalidInputException", f"Job run {run_id} is {run.status} and cannot be stopped."
            else:
                if run.status != "STOPPING":
                    run.status = "STOPPING"
                    if not getattr(run, "jobline_managed", False):
                        run.status = "STOPPED"
                        run.completed_on = utcnow()
                stopped.append({"JobName": job_name, "JobRunId": run_id})
                continue
            errors.append(
                {"JobName": job_name, "JobRunId": run_id, "ErrorDetail": {"ErrorCode": code, "ErrorMessage": message}}
            )
        return {"SuccessfulSubmissions": stopped, "Errors": errors}

    def batch_stop_job_run_response(self: Any) -> Any:
        return ActionResult(
            self.glue_backend.batch_stop_job_run(self._get_param("JobName"), self._get_param("JobRunIds") or [])
        )

    replace(FakeJob, "start_job_run", start_job_run)
    replace(GlueResponse, "start_job_run", start_job_run_response)
    replace(FakeJobRun, "as_dict", as_dict)
    add(GlueBackend, "batch_stop_job_run", batch_stop_job_run)
    add(GlueResponse, "batch_stop_job_run", batch_stop_job_run_response)


GLUE_LOG_GROUP = "/aws-glue/jobs/output"
GLUE_MESSAGES = {
    "SUCCEEDED": "Job run succeeded",
    "TIMEOUT": "Job run timed out",
    "STOPPED": "Job run stopped",
}


class LocalGlue(LocalService):
    component = "glue"

    def submit(self, glue_job: Any, run: Any) -> None:
        """The `glue_job_run` hook: a new STARTING run of `glue_job`."""
        self._start_thread(run.job_run_id, lambda: self._run(glue_job, run))

    def _event(self, glue_job: Any, run: Any, detail_type: str, **extra: Any) -> None:
        state = run.status
        detail = {
            "jobName": glue_job.name,
            "severity": "ERROR" if state in ("FAILED", "TIMEOUT", "ERROR") else "INFO",
            **extra,
            "state": state,
            "jobRunId": run.job_run_id,
            "message": run.error_message or GLUE_MESSAGES.get(state, f"Job run is {state}"),
        }
        self.emit("aws.glue", detail_type, detail, [])

    def _end(self, glue_job: Any, run: Any, state: str, message: str | None = None) -> None:
        run.status = state
        run.error_message = message
        run.completed_on = run.modified_on = utcnow()
        self.activity.note(
            self.component,
            f"glue run {glue_job.name}/{run.job_run_id[:12]}: {state}" + (f" ({message})" if message else ""),
            job=glue_job.name,
            status=state,
        )
        self._event(glue_job, run, "Glue Job State Change")

    def _command(self, glue_job: Any, run: Any) -> list[str]:
        arguments = dict(run.arguments or {})
        catalog_name = arguments.get("--jobline_job_name")
        if catalog_name:
            base = list(self.catalog_job(catalog_name).local_command)
        else:
            script = Path(str((glue_job.command or {}).get("ScriptLocation", "")))
            found = next((p for p in (script, self.catalog_path.parent / script) if p.is_file()), None)
            if found is None:
                raise JobFailedToStart(f"run names no catalog job and script {script} is not a local file")
            base = ["python", str(found.resolve())]
        argv = ["--JOB_ID", f"j_{uuid.uuid5(uuid.NAMESPACE_URL, glue_job.name).hex}", "--JOB_RUN_ID", run.job_run_id]
        argv += ["--JOB_NAME", glue_job.name, "--job-bookmark-option", "job-bookmark-disable"]
        for key, value in arguments.items():
            argv += [key, str(value)]
        return base + argv

    def _run(self, glue_job: Any, run: Any) -> None:
        if not self._acquire_slot(run.job_run_id, lambda: run.status == "STOPPING"):
            self._end(glue_job, run, "STOPPED")
            return
        try:
            self._attempt(glue_job, run)
        finally:
            self._slots.release()

    def _attempt(self, glue_job: Any, run: Any) -> None:
        if run.status == "STOPPING":
            self._end(glue_job, run, "STOPPED")
            return
        try:
            command = self._command(glue_job, run)
        except JobFailedToStart as error:
            self._end(glue_job, run, "FAILED", str(error))
            return
        run.modified_on = utcnow()
        run.status = "RUNNING"
        timeout_minutes = int(run.timeout or glue_job.timeout or 2880)
        deadline = time.monotonic() + timeout_minutes * SECONDS_PER_MINUTE
        notify = (run.notification_property or glue_job.notification_property or {}).get("NotifyDelayAfter")
        notify_at = time.monotonic() + float(notify) * SECONDS_PER_MINUTE / self.clock_speed if notify else None
        started_on = run.started_on

        def stop_reason() -> str | None:
            nonlocal notify_at
            if notify_at is not None and time.monotonic() >= notify_at and run.status == "RUNNING":
                notify_at = None
                self._event(
                    glue_job,
                    run,
                    "Glue Job Run Status",
                    notificationCondition={"NotifyDelayAfter": float(notify)},
                    startedOn=started_on.isoformat(timespec="milliseconds") + "Z",
                )
            return "STOPPED" if run.status == "STOPPING" else None

        log_path = self.log_dir / f"{run.job_run_id}.log"
        code, killed = self.run_process(
            run.job_run_id, command, {"GLUE_VERSION": str(glue_job.glue_version or "")}, log_path, deadline, stop_reason
        )
        self.ship_logs(GLUE_LOG_GROUP, run.job_run_id, log_path)
        if killed == "timeout":
            self._end(glue_job, run, "TIMEOUT", f"Job run timed out after {timeout_minutes} minute(s)")
        elif killed == "STOPPED":
            self._end(glue_job, run, "STOPPED")
        elif killed:
            self._end(glue_job, run, "ERROR", killed)
        elif code == 0:
            self._end(glue_job, run, "SUCCEEDED")
        else:
            self._end(glue_job, run, "FAILED", self.last_line(log_path, f"Command failed with exit code {code}"))
