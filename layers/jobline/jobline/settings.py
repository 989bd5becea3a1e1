"""Runtime configuration: every environment variable jobline reads, in one model."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGED_CATALOG = Path(__file__).with_name("jobs.yaml")
# Each backend submit API -> its Settings fields: (submit queue URL, rate per second).
SUBMIT_APIS = {
    "SubmitJob": ("submit_batch_job_queue_url", "submit_job_rate"),
    "SubmitServiceJob": ("submit_service_job_queue_url", "submit_service_job_rate"),
    "CreateProcessingJob": ("create_processing_job_queue_url", "create_processing_job_rate"),
    "StartJobRun": ("start_job_run_queue_url", "start_job_run_rate"),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    run_table_name: str = Field(description="DynamoDB run table")
    state_machine_prefix: str = Field(
        description="The run state machines' ARN up to the retry policy id (one machine per policy):"
        " arn:aws:states:<region>:<account>:stateMachine:<stack>-run-"
    )
    event_dlq_url: str = Field(description="Where rejected trigger events are parked for operators")
    run_data_bucket: str = Field(description="Bucket for trigger events too large to inline")
    job_queue_on_demand_arn: str = ""
    job_queue_spot_arn: str = ""
    job_queue_gpu_arn: str = ""
    default_job_definition_arn: str = ""
    gpu_job_definition_arn: str = ""
    service_job_queue_arn: str = ""
    sagemaker_role_arn: str = ""
    glue_job_name: str = ""
    catalog_path: Path = PACKAGED_CATALOG
    run_retention_days: int = Field(default=90, ge=1)
    # Inline limit for the trigger event handed to a job as an environment variable; Batch caps the
    # whole SubmitJob request, so larger events travel as an S3 reference instead.
    inline_event_limit_bytes: int = Field(default=6144, ge=256)
    # Operators (API, CLI, notifications).
    job_bus_name: str = Field(default="", description="Where Run State Change notifications go")
    job_log_group_name: str = Field(default="", description="The Batch jobs' log group, for log links")
    failure_topic_arn: str = Field(default="", description="SNS topic told of FAILED and TIMEOUT runs (optional)")
    notification_redrive_queue_url: str = Field(
        default="", description="Where Run State Change events PutEvents refused wait to be sent again"
    )
    # Fan-outs (jobline.fanouts): requests and continuations, items, and where manifests may be read.
    fanout_request_queue_url: str = ""
    fanout_queue_url: str = ""
    input_bucket: str = Field(default="", description="The input bucket: manifests are read from it")
    # How long a manifest reader holds its lease: past the longest invocation (FanoutFunction's timeout).
    fanout_lease_seconds: int = Field(default=960, ge=60)
    # The reconciler looks up runs that have not moved for this long (their events may be lost).
    reconcile_after_seconds: int = Field(default=900, ge=0)
    # A PENDING row this old has lost its execution's start (a started one moves it on at once).
    unstarted_after_seconds: int = Field(default=120, ge=0)
    # The submit queues, one per backend submit API (jobline.submit), and each API's rate: calls per
    # second the stack's submitters make, shared by all of them. Defaults: AWS's default quotas.
    # Batch: SubmitJob 50 TPS, SubmitServiceJob 5 TPS per account, fixed
    # (https://docs.aws.amazon.com/batch/latest/userguide/service_limits.html). SageMaker
    # CreateProcessingJob and Glue StartJobRun: no published TPS (SageMaker documents 1 TPS for
    # CreateTrainingJob); 1/s and 10/s are assumptions, as the local stack's contracts make them
    # (jobline_local.contracts.throttling): set them per stack from the account's Service Quotas.
    submit_batch_job_queue_url: str = ""
    submit_service_job_queue_url: str = ""
    create_processing_job_queue_url: str = ""
    start_job_run_queue_url: str = ""
    submit_job_rate: int = Field(default=50, ge=1)
    submit_service_job_rate: int = Field(default=5, ge=1)
    create_processing_job_rate: int = Field(default=1, ge=1)
    start_job_run_rate: int = Field(default=10, ge=1)

    def submit_queue_url(self, api: str) -> str:
        """The submit queue of a backend's submit API (Backend.submit_api)."""
        return str(getattr(self, SUBMIT_APIS[api][0]))

    def submit_rate(self, api: str) -> int:
        """Calls per second the stack makes to a backend's submit API."""
        return int(getattr(self, SUBMIT_APIS[api][1]))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # filled from the environment
