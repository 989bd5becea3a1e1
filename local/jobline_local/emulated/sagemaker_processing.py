"""SageMaker processing jobs, locally. moto keeps the API, with the adaptation below (the whole
request kept, AWS's members, a job that stays InProgress); LocalProcessing runs the job's
catalog `local_command`: InProgress -> Completed | Failed | Stopping -> Stopped, with a
`SageMaker Processing Job State Change` event at each change, as SageMaker sends them."""

from __future__ import annotations

import time
from typing import Any

from jobline_local.adaptations.hooks import hooks
from jobline_local.adaptations.patching import replace
from jobline_local.adaptations.stepfunctions_integrations import epoch_ms
from jobline_local.emulated.compute import JobFailedToStart, LocalService, utcnow

_PROCESSING_FIELDS = (
    "ProcessingInputs",
    "ProcessingOutputConfig",
    "ProcessingJobName",
    "ProcessingResources",
    "StoppingCondition",
    "AppSpecification",
    "Environment",
    "NetworkConfig",
    "RoleArn",
    "ExperimentConfig",
    "ProcessingJobArn",
    "ProcessingJobStatus",
    "ExitMessage",
    "FailureReason",
    "ProcessingEndTime",
    "ProcessingStartTime",
    "LastModifiedTime",
    "CreationTime",
)


def describe_processing_job(job: Any) -> dict[str, Any]:
    """DescribeProcessingJob's answer, with AWS's members only."""
    values = {
        "ProcessingInputs": job.processing_inputs,
        "ProcessingOutputConfig": job.processing_output_config,
        "ProcessingJobName": job.processing_job_name,
        "ProcessingResources": getattr(job, "processing_resources", None),
        "StoppingCondition": job.stopping_condition,
        "AppSpecification": job.app_specification,
        "Environment": getattr(job, "environment", None),
        "NetworkConfig": job.network_config,
        "RoleArn": job.role_arn,
        "ExperimentConfig": job.experiment_config,
        "ProcessingJobArn": job.arn,
        "ProcessingJobStatus": job.processing_job_status,
        "ExitMessage": getattr(job, "exit_message", None),
        "FailureReason": getattr(job, "failure_reason", None),
        "ProcessingEndTime": job.processing_end_time,
        "ProcessingStartTime": getattr(job, "processing_start_time", None),
        "LastModifiedTime": job.last_modified_time,
        "CreationTime": job.creation_time,
    }
    return {k: values[k] for k in _PROCESSING_FIELDS if values[k] not in (None, [None])}


def adapt_sagemaker_processing_jobs() -> None:
    """moto 5.2.5's CreateProcessingJob drops Environment and ProcessingResources, accepts a name
    already taken, and makes the job Completed at once; DescribeProcessingJob returns moto's own
    attribute names. Keep the whole request, refuse a taken name, describe with AWS's members,
    and hand the job (InProgress) to the `processing_job` hook: StopProcessingJob then asks it
    to stop (Stopping) instead of ending it on the spot."""
    from moto.core.utils import utcnow
    from moto.sagemaker.exceptions import ResourceInUseException, ValidationError
    from moto.sagemaker.models import FakeProcessingJob, SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    def create_processing_job(self: Any) -> Any:
        from moto.core.responses import ActionResult

        backend = self.sagemaker_backend
        name = self._get_param("ProcessingJobName")
        if name in backend.processing_jobs:
            raise ResourceInUseException(
                message=f"Job name must be unique within an AWS account and region, and a job with this name"
                f" already exists ({backend.processing_jobs[name].arn})"
            )
        job = backend.create_processing_job(
            app_specification=self._get_param("AppSpecification"),
            experiment_config=self._get_param("ExperimentConfig"),
            network_config=self._get_param("NetworkConfig"),
            processing_inputs=self._get_param("ProcessingInputs"),
            processing_job_name=name,
            processing_output_config=self._get_param("ProcessingOutputConfig"),
            role_arn=self._get_param("RoleArn"),
            stopping_condition=self._get_param("StoppingCondition"),
            tags=self._get_param("Tags"),
        )
        job.environment = self._get_param("Environment")
        job.processing_resources = self._get_param("ProcessingResources")
        run = hooks["processing_job"]
        if run is not None:
            job.processing_job_status = "InProgress"
            job.processing_end_time = None
            run(job)
        return ActionResult({"ProcessingJobArn": job.arn})

    def response_object(self: Any) -> dict[str, Any]:
        return describe_processing_job(self)

    def stop_processing_job(self: Any, processing_job_name: str) -> None:
        job = self.processing_jobs.get(processing_job_name)
        if job is None:
            arn = FakeProcessingJob.arn_formatter(processing_job_name, self.account_id, self.region_name)
            raise ValidationError(message=f"Could not find processing job '{arn}'.")
        if job.processing_job_status != "InProgress":
            raise ValidationError(
                message=f"The request was rejected because the processing job is in status {job.processing_job_status}."
            )
        job.processing_job_status = "Stopping" if hooks["processing_job"] is not None else "Stopped"
        job.last_modified_time = utcnow()
        if job.processing_job_status == "Stopped":
            job.processing_end_time = job.last_modified_time

    replace(SageMakerResponse, "create_processing_job", create_processing_job)
    replace(FakeProcessingJob, "response_object", property(response_object))
    replace(SageMakerModelBackend, "stop_processing_job", stop_processing_job)


PROCESSING_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
MAX_RUNTIME_PROCESSING = "MaxRuntimeExceeded: Processing job exceeded its maximum runtime (StoppingCondition)"


class LocalProcessing(LocalService):
    component = "sagemaker"

    def submit(self, job: Any) -> None:
        """The `processing_job` hook: a new InProgress job."""
        self._start_thread(job.processing_job_name, lambda: self._run(job))

    def detail(self, job: Any) -> dict[str, Any]:
        detail = epoch_ms(describe_processing_job(job))
        detail["Tags"] = job.tags or []
        return detail

    def _move(self, job: Any, status: str, **fields: Any) -> None:
        job.processing_job_status = status
        job.last_modified_time = utcnow()
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
        if not self._acquire_slot(job.processing_job_name, lambda: job.processing_job_status == "Stopping"):
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
        job.processing_start_time = utcnow()
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
