"""Local stand-ins for the compute of jobline's newer backends, as LocalBatch is for Batch.

Each runs the catalog job's `local_command` as a process with the environment and arguments the
real job gets, moves the job through the service's real statuses (what moto's Describe/Get calls,
and so Step Functions' `.sync`, see), honours its maximum runtime or timeout and its stop call,
and puts the service's state change events, shaped as AWS documents them, on the default bus:

- SageMaker processing jobs: InProgress -> Completed | Failed | Stopping -> Stopped
  (`SageMaker Processing Job State Change`).
- Batch service jobs (SageMaker training through a service job queue): SUBMITTED -> RUNNABLE ->
  SCHEDULED -> STARTING -> RUNNING -> SUCCEEDED | FAILED, within the service environment's
  capacity (`Batch Service Job State Change`, and `SageMaker Training Job State Change` for the
  training job, with its Tags).
- Glue job runs: STARTING -> RUNNING -> SUCCEEDED | FAILED | TIMEOUT | STOPPING -> STOPPED
  (`Glue Job State Change` at the end, `Glue Job Run Status` once a run outlives the job's
  NotifyDelayAfter).

Jobs reach them through jobline_local.moto_adaptations' hooks.
"""

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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobline_local import moto_adaptations
from jobline_local.activity import Activity

STOP_GRACE_SECONDS = 2.0
POLL_SECONDS = 0.1
SECONDS_PER_MINUTE = 60  # Glue counts its Timeout in minutes
_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.setpgid(0, 0)


def _utcnow() -> datetime:
    """moto keeps naive UTC datetimes."""
    return datetime.now(UTC).replace(tzinfo=None)


def _ms(when: datetime | None = None) -> int:
    when = when or _utcnow()
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


class JobFailedToStart(Exception):
    pass


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
        self._slots = threading.BoundedSemaphore(slots)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        self._catalog: tuple[float, Any] | None = None
        self.active = 0
        log_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------ lifecycle
    def _start_thread(self, name: str, target: Callable[[], None]) -> None:
        def run() -> None:
            try:
                target()
            except Exception as error:
                self.activity.note(self.component, f"{name}: local compute error {error!r}", logging.ERROR)
            finally:
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

    def _acquire_slot(self, cancelled: Callable[[], bool]) -> bool:
        while not self._slots.acquire(timeout=0.2):
            if cancelled() or self.stopping:
                return False
        return True

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
            proc = subprocess.Popen(  # noqa: S603 - the catalog's declared local command
                command,
                cwd=self.catalog_path.parent,
                env={**self.base_env, "PYTHONUNBUFFERED": "1", **env},
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
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


# ==================================================================== SageMaker processing jobs
PROCESSING_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
MAX_RUNTIME_PROCESSING = "MaxRuntimeExceeded: Processing job exceeded its maximum runtime (StoppingCondition)"


class LocalProcessing(LocalService):
    component = "sagemaker"

    def submit(self, job: Any) -> None:
        """The `processing_job` hook: a new InProgress job."""
        self._start_thread(job.processing_job_name, lambda: self._run(job))

    def detail(self, job: Any) -> dict[str, Any]:
        detail = moto_adaptations.epoch_ms(moto_adaptations.describe_processing_job(job))
        detail["Tags"] = job.tags or []
        return detail

    def _move(self, job: Any, status: str, **fields: Any) -> None:
        job.processing_job_status = status
        job.last_modified_time = _utcnow()
        for name, value in fields.items():
            setattr(job, name, value)
        if status in ("Completed", "Failed", "Stopped"):
            job.processing_end_time = job.last_modified_time
            self.activity.note(
                self.component,
                f"processing job {job.processing_job_name}: {status}"
                + (f" ({job.failure_reason})" if getattr(job, "failure_reason", None) else ""),
                job=job.processing_job_name,
                status=status,
            )
        self.emit("aws.sagemaker", "SageMaker Processing Job State Change", self.detail(job), [job.arn])

    def _stop_requested(self, job: Any) -> str | None:
        return "Stopped" if job.processing_job_status == "Stopping" else None

    def _run(self, job: Any) -> None:
        self._move(job, "InProgress")
        if not self._acquire_slot(lambda: job.processing_job_status == "Stopping"):
            self._move(job, "Stopped")
            return
        try:
            self._attempt(job)
        finally:
            self._slots.release()

    def _attempt(self, job: Any) -> None:
        name = job.processing_job_name
        environment = dict(job.environment or {})
        try:
            catalog_job = self.catalog_job(environment.get("JOBLINE_JOB_NAME"))
        except JobFailedToStart as error:
            self._move(job, "Failed", failure_reason=f"ClientError: {error}")
            return
        app = job.app_specification or {}
        command = [*catalog_job.local_command, *app.get("ContainerArguments", [])]
        job.processing_start_time = _utcnow()
        runtime = (job.stopping_condition or {}).get("MaxRuntimeInSeconds", 86_400)
        log_path = self.log_dir / f"{name}.log"
        env = {
            **environment,
            "AWS_EXECUTION_ENV": "SageMaker Processing",
            "PROCESSING_JOB_NAME": name,
            "PROCESSING_JOB_ARN": job.arn,
        }
        code, killed = self.run_process(
            name, command, env, log_path, time.monotonic() + int(runtime), lambda: self._stop_requested(job)
        )
        self.ship_logs(PROCESSING_LOG_GROUP, f"{name}/algo-1-{int(time.time())}", log_path)
        if killed == "timeout":
            self._move(job, "Stopped", failure_reason=MAX_RUNTIME_PROCESSING)
        elif killed == "Stopped":
            self._move(job, "Stopped")
        elif killed:
            self._move(job, "Failed", failure_reason=f"InternalServerError: {killed}")
        elif code == 0:
            self._move(job, "Completed", exit_message=self.last_line(log_path, "") or None)
        else:
            self._move(
                job,
                "Failed",
                failure_reason=f"AlgorithmError: {self.last_line(log_path, 'no output')}, exit code: {code}",
            )


# ==================================================================== Batch service jobs (SageMaker training)
TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
SERVICE_ATTEMPT_TIMEOUT = "Job attempt duration exceeded timeout"
MAX_RUNTIME_TRAINING = "MaxRuntimeExceeded: Training job exceeded its maximum runtime (StoppingCondition)"


class LocalServiceJobs(LocalService):
    component = "training"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._capacity = threading.Condition()
        self._in_use: dict[str, int] = {}

    def submit(self, job: moto_adaptations.ServiceJob) -> None:
        """The `service_job` hook: a new SUBMITTED service job."""
        self._start_thread(job.name, lambda: self._run(job))

    # ------------------------------------------------------------ events
    def _move(self, job: moto_adaptations.ServiceJob, status: str, reason: str | None = None) -> None:
        job.status = status
        if reason is not None:
            job.status_reason = reason
        if status in moto_adaptations.SERVICE_ENDED:
            self.activity.note(
                self.component,
                f"service job {job.name}: {status} ({job.status_reason})",
                job=job.name,
                status=status,
            )
        self.emit("aws.batch", "Batch Service Job State Change", job.describe(), [job.arn])

    def _training_event(self, training: dict[str, Any], status: str, secondary: str, failure: str | None) -> None:
        now = _ms()
        training["TrainingJobStatus"], training["SecondaryStatus"] = status, secondary
        training["LastModifiedTime"] = now
        training["SecondaryStatusTransitions"].append({"Status": secondary, "StartTime": now})
        if status in ("Completed", "Failed", "Stopped"):
            training["TrainingEndTime"] = now
        if failure:
            training["FailureReason"] = failure
        self.emit("aws.sagemaker", "SageMaker Training Job State Change", dict(training), [training["TrainingJobArn"]])

    # ------------------------------------------------------------ capacity
    def _capacity_of(self, job: moto_adaptations.ServiceJob) -> int:
        state = moto_adaptations.service_state(self.account_id, self.region)
        queue = moto_adaptations._batch_backend(self.account_id, self.region).get_job_queue(job.queue_arn)
        order = getattr(queue, "jobline_service_order", [])
        total = 0
        for item in order:
            environment = state.environments.get(item["serviceEnvironment"])
            if environment is not None and environment.state == "ENABLED":
                total += sum(int(limit.get("maxCapacity", 0)) for limit in environment.capacity_limits)
        return total

    def _reserve(self, job: moto_adaptations.ServiceJob, instances: int) -> bool:
        """Wait in RUNNABLE until the queue's service environments have room for the job."""
        capacity = self._capacity_of(job)
        if instances > capacity:
            return False
        with self._capacity:
            while self._in_use.get(job.queue_arn, 0) + instances > capacity:
                if job.terminate_reason or self.stopping:
                    return False
                self._capacity.wait(0.2)
            self._in_use[job.queue_arn] = self._in_use.get(job.queue_arn, 0) + instances
        return True

    def _release(self, job: moto_adaptations.ServiceJob, instances: int) -> None:
        with self._capacity:
            self._in_use[job.queue_arn] -= instances
            self._capacity.notify_all()

    # ------------------------------------------------------------ one job
    def _run(self, job: moto_adaptations.ServiceJob) -> None:
        self._move(job, "SUBMITTED")
        request = json.loads(job.payload)
        instances = int(request.get("ResourceConfig", {}).get("InstanceCount", 1))
        self._move(job, "RUNNABLE", "Waiting for capacity")
        if not self._reserve(job, instances):
            reason = job.terminate_reason or (
                "Terminated: the local stack stopped"
                if self.stopping
                else f"the job needs {instances} instance(s), more than its service environments' capacity"
            )
            job.finish("FAILED", reason)
            self._move(job, "FAILED")
            return
        try:
            job.scheduled_at = _ms()
            self._move(job, "SCHEDULED", "Scheduled on the service environment")
            if not self._acquire_slot(lambda: bool(job.terminate_reason)):
                job.finish("FAILED", job.terminate_reason or "Terminated: the local stack stopped")
                self._move(job, "FAILED")
                return
            try:
                self._attempt(job, request)
            finally:
                self._slots.release()
        finally:
            self._release(job, instances)

    def _attempt(self, job: moto_adaptations.ServiceJob, request: dict[str, Any]) -> None:
        name = f"AWSBatch{job.name[:23]}{uuid.uuid4().hex}"
        arn = f"arn:aws:sagemaker:{self.region}:{self.account_id}:training-job/{name}"
        now = _ms()
        job.started_at = now
        job.attempts.append({"serviceResourceId": {"name": "TrainingJobArn", "value": arn}, "startedAt": now})
        tags = {t["Key"]: t["Value"] for t in request.get("Tags", [])}
        training: dict[str, Any] = {
            "TrainingJobName": name,
            "TrainingJobArn": arn,
            "HyperParameters": request.get("HyperParameters", {}),
            "AlgorithmSpecification": request.get("AlgorithmSpecification", {}),
            "RoleArn": request.get("RoleArn"),
            "OutputDataConfig": request.get("OutputDataConfig", {}),
            "ResourceConfig": request.get("ResourceConfig", {}),
            "StoppingCondition": request.get("StoppingCondition", {}),
            "CreationTime": now,
            "TrainingStartTime": now,
            "SecondaryStatusTransitions": [],
            "Tags": tags,
        }
        self._move(job, "STARTING", "Starting the SageMaker training job")
        self._training_event(training, "InProgress", "Starting", None)
        environment = dict(request.get("Environment", {}))
        try:
            catalog_job = self.catalog_job(job.tags.get("jobline:job") or environment.get("JOBLINE_JOB_NAME"))
        except JobFailedToStart as error:
            self._end(job, training, "Failed", f"ClientError: {error}")
            return
        work = self.log_dir / name
        (work / "model").mkdir(parents=True, exist_ok=True)
        (work / "output").mkdir(exist_ok=True)
        hyper = training["HyperParameters"]
        env = {
            **environment,
            "TRAINING_JOB_NAME": name,
            "TRAINING_JOB_ARN": arn,
            "SM_HPS": json.dumps(hyper),
            **{f"SM_HP_{key.upper().replace('-', '_')}": str(value) for key, value in hyper.items()},
            "SM_MODEL_DIR": str(work / "model"),
            "SM_OUTPUT_DATA_DIR": str(work / "output"),
            "SM_CURRENT_HOST": "algo-1",
            "SM_HOSTS": json.dumps(["algo-1"]),
            "SM_CURRENT_INSTANCE_TYPE": str(training["ResourceConfig"].get("InstanceType", "")),
        }
        runtime = int(training["StoppingCondition"].get("MaxRuntimeInSeconds", 86_400))
        attempt_limit = int(job.timeout_config.get("attemptDurationSeconds") or runtime)
        limit = min(runtime, attempt_limit)
        self._move(job, "RUNNING", "Training")
        self._training_event(training, "InProgress", "Training", None)
        log_path = self.log_dir / f"{name}.log"
        code, killed = self.run_process(
            job.name, catalog_job.local_command, env, log_path, time.monotonic() + limit, lambda: job.terminate_reason
        )
        self.ship_logs(TRAINING_LOG_GROUP, f"{name}/algo-1-{int(time.time())}", log_path)
        if killed == "timeout":
            if attempt_limit < runtime:
                self._end(job, training, "Stopped", SERVICE_ATTEMPT_TIMEOUT, secondary="Stopped")
            else:
                self._end(job, training, "Stopped", MAX_RUNTIME_TRAINING, secondary="MaxRuntimeExceeded")
        elif killed:
            self._end(job, training, "Stopped", killed, secondary="Stopped", user_stop=True)
        elif code == 0:
            self._end(job, training, "Completed", None)
        else:
            self._end(
                job, training, "Failed", f"AlgorithmError: {self.last_line(log_path, 'no output')}, exit code: {code}"
            )

    def _end(
        self,
        job: moto_adaptations.ServiceJob,
        training: dict[str, Any],
        status: str,
        failure: str | None,
        secondary: str | None = None,
        user_stop: bool = False,
    ) -> None:
        self._training_event(training, status, secondary or status, None if user_stop else failure)
        if status == "Completed":
            job.finish("SUCCEEDED", "Received status from SageMaker: Training job completed")
        elif user_stop:
            job.finish("FAILED", failure or "Terminated")
        elif failure == SERVICE_ATTEMPT_TIMEOUT:
            job.finish("FAILED", failure)
        else:
            job.finish("FAILED", f"Received status from SageMaker: {failure}")
        self._move(job, job.status)


# ==================================================================== Glue job runs
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
        run.completed_on = run.modified_on = _utcnow()
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
        if not self._acquire_slot(lambda: run.status == "STOPPING"):
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
        run.modified_on = _utcnow()
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
