"""The local compute of Batch service jobs (SageMaker training through a service job queue): the
job runs its catalog `local_command` as the training job would, SUBMITTED -> RUNNABLE ->
SCHEDULED -> STARTING -> RUNNING -> SUCCEEDED | FAILED within the service environments'
capacity, with `Batch Service Job State Change` events and `SageMaker Training Job State Change`
events for the training job (with its Tags), as the services send them."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from jobline_local.emulated import batch_service_jobs
from jobline_local.emulated.batch_service_jobs import ServiceJob
from jobline_local.emulated.compute import JobFailedToStart, LocalService, epoch_millis

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
SERVICE_ATTEMPT_TIMEOUT = "Job attempt duration exceeded timeout"
MAX_RUNTIME_TRAINING = "MaxRuntimeExceeded: Training job exceeded its maximum runtime (StoppingCondition)"


class LocalServiceJobs(LocalService):
    component = "training"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._capacity = threading.Condition()
        self._in_use: dict[str, int] = {}

    def submit(self, job: ServiceJob) -> None:
        """The `service_job` hook: a new SUBMITTED service job."""
        # It joins the slots' line once its instances are reserved: in line before, it could hold
        # the line's head while waiting for instances a job behind it holds.
        self._start_thread(job.job_id, lambda: self._run(job), join_line=False)

    # ------------------------------------------------------------ events
    def _move(self, job: ServiceJob, status: str, reason: str | None = None) -> None:
        job.status = status
        if reason is not None:
            job.status_reason = reason
        if status in batch_service_jobs.SERVICE_ENDED:
            self.activity.note(
                self.component,
                f"service job {job.name}: {status} ({job.status_reason})",
                job=job.name,
                status=status,
            )
        self.emit("aws.batch", "Batch Service Job State Change", job.describe(), [job.arn])

    def _training_event(self, training: dict[str, Any], status: str, secondary: str, failure: str | None) -> None:
        now = epoch_millis()
        training["TrainingJobStatus"], training["SecondaryStatus"] = status, secondary
        training["LastModifiedTime"] = now
        training["SecondaryStatusTransitions"].append({"Status": secondary, "StartTime": now})
        if status in ("Completed", "Failed", "Stopped"):
            training["TrainingEndTime"] = now
        if failure:
            training["FailureReason"] = failure
        self.emit("aws.sagemaker", "SageMaker Training Job State Change", dict(training), [training["TrainingJobArn"]])

    # ------------------------------------------------------------ capacity
    def _capacity_of(self, job: ServiceJob) -> int:
        state = batch_service_jobs.service_state(self.account_id, self.region)
        queue = batch_service_jobs.batch_backend(self.account_id, self.region).get_job_queue(job.queue_arn)
        order = getattr(queue, "jobline_service_order", [])
        total = 0
        for item in order:
            environment = state.environments.get(item["serviceEnvironment"])
            if environment is not None and environment.state == "ENABLED":
                total += sum(int(limit.get("maxCapacity", 0)) for limit in environment.capacity_limits)
        return total

    def _reserve(self, job: ServiceJob, instances: int) -> bool:
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

    def _release(self, job: ServiceJob, instances: int) -> None:
        with self._capacity:
            self._in_use[job.queue_arn] -= instances
            self._capacity.notify_all()

    # ------------------------------------------------------------ one job
    def _run(self, job: ServiceJob) -> None:
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
            job.scheduled_at = epoch_millis()
            self._move(job, "SCHEDULED", "Scheduled on the service environment")
            if not self._acquire_slot(job.job_id, lambda: bool(job.terminate_reason)):
                job.finish("FAILED", job.terminate_reason or "Terminated: the local stack stopped")
                self._move(job, "FAILED")
                return
            try:
                self._attempt(job, request)
            finally:
                self._slots.release()
        finally:
            self._release(job, instances)

    def _attempt(self, job: ServiceJob, request: dict[str, Any]) -> None:
        name = f"AWSBatch{job.name[:23]}{uuid.uuid4().hex}"
        arn = f"arn:aws:sagemaker:{self.region}:{self.account_id}:training-job/{name}"
        now = epoch_millis()
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
        job: ServiceJob,
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
