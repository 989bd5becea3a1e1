"""Batch service jobs, which moto 5.2.5 lacks: service environments, SAGEMAKER_TRAINING job queues
and SubmitServiceJob / DescribeServiceJob / ListServiceJobs / TerminateServiceJob, added to
moto's Batch backend and routes with AWS's shapes and checks. A submitted job is handed to the
`service_job` hook: the local compute (batch_service_compute) runs it."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from jobline_local.adaptations.hooks import hooks
from jobline_local.adaptations.patching import add, replace

SERVICE_PAYLOAD_LIMIT = 10 * 1024
SERVICE_JOB_TYPES = ("SAGEMAKER_TRAINING",)
SERVICE_ENDED = ("SUCCEEDED", "FAILED")
_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class ServiceEnvironment:
    name: str
    arn: str
    type: str
    state: str
    capacity_limits: list[dict[str, Any]]
    tags: dict[str, str]

    def describe(self) -> dict[str, Any]:
        return {
            "serviceEnvironmentName": self.name,
            "serviceEnvironmentArn": self.arn,
            "serviceEnvironmentType": self.type,
            "state": self.state,
            "status": "VALID",
            "capacityLimits": self.capacity_limits,
            "tags": self.tags,
        }


@dataclass
class ServiceJob:
    """One SubmitServiceJob. The local stand-in moves `status` and fills the attempt fields."""

    account_id: str
    region: str
    name: str
    queue_arn: str
    service_job_type: str
    payload: str
    retry_strategy: dict[str, Any]
    timeout_config: dict[str, Any]
    scheduling_priority: int | None
    share_identifier: str | None
    tags: dict[str, str]
    client_token: str | None
    job_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "SUBMITTED"
    status_reason: str | None = "Submitted by user"
    created_at: int = field(default_factory=now_ms)
    scheduled_at: int | None = None
    started_at: int | None = None
    stopped_at: int | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    is_terminated: bool = False
    terminate_reason: str | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:batch:{self.region}:{self.account_id}:service-job/{self.job_id}"

    def signature(self) -> tuple[Any, ...]:
        """What must match for a repeated clientToken to name the same job."""
        return (
            self.name,
            self.queue_arn,
            self.service_job_type,
            self.payload,
            json.dumps(self.retry_strategy, sort_keys=True),
            json.dumps(self.timeout_config, sort_keys=True),
            self.scheduling_priority,
            self.share_identifier,
            json.dumps(self.tags, sort_keys=True),
        )

    def describe(self) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "attempts": self.attempts,
            "createdAt": self.created_at,
            "isTerminated": self.is_terminated,
            "jobArn": self.arn,
            "jobId": self.job_id,
            "jobName": self.name,
            "jobQueue": self.queue_arn,
            "retryStrategy": self.retry_strategy,
            "serviceRequestPayload": self.payload,
            "serviceJobType": self.service_job_type,
            "status": self.status,
            "tags": self.tags,
            "timeoutConfig": self.timeout_config,
        }
        if self.attempts:
            detail["latestAttempt"] = {"serviceResourceId": self.attempts[-1].get("serviceResourceId")}
        optional = {
            "scheduledAt": self.scheduled_at,
            "schedulingPriority": self.scheduling_priority,
            "shareIdentifier": self.share_identifier,
            "startedAt": self.started_at,
            "statusReason": self.status_reason,
            "stoppedAt": self.stopped_at,
        }
        detail.update({k: v for k, v in optional.items() if v is not None})
        return detail

    def summary(self) -> dict[str, Any]:
        described = self.describe()
        keep = ("createdAt", "jobArn", "jobId", "jobName", "serviceJobType", "shareIdentifier", "status")
        summary = {k: described[k] for k in keep if k in described}
        summary.update(
            {k: described[k] for k in ("statusReason", "startedAt", "stoppedAt", "latestAttempt") if k in described}
        )
        return summary

    def finish(self, status: str, reason: str) -> None:
        """End the job (and its open attempt) now."""
        now = now_ms()
        if self.attempts and "stoppedAt" not in self.attempts[-1]:
            self.attempts[-1].update(stoppedAt=now, statusReason=reason)
        self.status, self.status_reason, self.stopped_at = status, reason, now


class _ServiceState:
    def __init__(self) -> None:
        self.environments: dict[str, ServiceEnvironment] = {}
        self.jobs: dict[str, ServiceJob] = {}
        self.tokens: dict[str, str] = {}
        self.lock = threading.Lock()


def batch_backend(account_id: str, region: str) -> Any:
    from moto.batch.models import batch_backends

    return batch_backends[account_id][region]


def service_state(account_id: str, region: str) -> _ServiceState:
    """Service environments and service jobs of one account and region (reset with moto's backend)."""
    backend = batch_backend(account_id, region)
    state = backend.__dict__.get("_jobline_service")
    if state is None:
        state = backend.__dict__.setdefault("_jobline_service", _ServiceState())
    return state


def _client_error(message: str) -> Exception:
    from moto.batch.exceptions import ClientException

    return ClientException(message)


def _service_queue(backend: Any, identifier: str) -> Any:
    queue = backend.get_job_queue(identifier)
    if queue is None:
        raise _client_error(f"Job queue {identifier} does not exist")
    return queue


def submit_service_job(account_id: str, region: str, params: dict[str, Any]) -> ServiceJob:
    backend = batch_backend(account_id, region)
    state = service_state(account_id, region)
    for required in ("jobName", "jobQueue", "serviceJobType", "serviceRequestPayload"):
        if not params.get(required):
            raise _client_error(f"{required} must be provided")
    name = params["jobName"]
    if not _JOB_NAME.match(name):
        raise _client_error(
            "jobName: up to 128 letters (uppercase and lowercase), numbers, hyphens and underscores,"
            " starting with a letter or number"
        )
    queue = _service_queue(backend, params["jobQueue"])
    queue_type = getattr(queue, "jobline_queue_type", "ECS")
    if queue_type != params["serviceJobType"] or params["serviceJobType"] not in SERVICE_JOB_TYPES:
        raise _client_error(
            f"serviceJobType {params['serviceJobType']} does not match job queue {queue.name} of type {queue_type}"
        )
    if queue.state != "ENABLED":
        raise _client_error(f"Job queue {queue.name} is not ENABLED")
    payload = params["serviceRequestPayload"]
    size = len(payload.encode())
    if size > SERVICE_PAYLOAD_LIMIT:
        raise _client_error(
            f"serviceRequestPayload is {size} bytes; the maximum is {SERVICE_PAYLOAD_LIMIT} bytes (10 KiB)"
        )
    try:
        if not isinstance(json.loads(payload), dict):
            raise ValueError
    except ValueError:
        raise _client_error("serviceRequestPayload must be a JSON object (a CreateTrainingJob request)") from None
    retry = params.get("retryStrategy") or {"attempts": 1}
    if not 1 <= int(retry.get("attempts", 1)) <= 10:
        raise _client_error("retryStrategy.attempts must be between 1 and 10")
    timeout = params.get("timeoutConfig") or {}
    if "attemptDurationSeconds" in timeout and int(timeout["attemptDurationSeconds"]) < 60:
        raise _client_error("timeoutConfig.attemptDurationSeconds must be at least 60")
    share = params.get("shareIdentifier")
    if queue.schedule_policy and not share:
        raise _client_error(f"Job queue {queue.name} has a fair share scheduling policy: shareIdentifier is required")
    if share and not queue.schedule_policy:
        raise _client_error(
            f"shareIdentifier is only for job queues with a fair share scheduling policy ({queue.name})"
        )
    priority = params.get("schedulingPriority")
    if priority is not None and not 0 <= int(priority) <= 9999:
        raise _client_error("schedulingPriority must be between 0 and 9999")
    tags = params.get("tags") or {}
    if len(tags) > 50:
        raise _client_error("at most 50 tags")
    job = ServiceJob(
        account_id=account_id,
        region=region,
        name=name,
        queue_arn=queue.arn,
        service_job_type=params["serviceJobType"],
        payload=payload,
        retry_strategy={
            "attempts": int(retry.get("attempts", 1)),
            **{k: v for k, v in retry.items() if k != "attempts"},
        },
        timeout_config=timeout,
        scheduling_priority=None if priority is None else int(priority),
        share_identifier=share,
        tags=tags,
        client_token=params.get("clientToken"),
    )
    with state.lock:
        if job.client_token is not None and job.client_token in state.tokens:
            earlier = state.jobs[state.tokens[job.client_token]]
            if earlier.signature() != job.signature():
                raise _client_error(
                    f"clientToken {job.client_token} was already used for job {earlier.job_id} with other parameters"
                )
            return earlier
        state.jobs[job.job_id] = job
        if job.client_token is not None:
            state.tokens[job.client_token] = job.job_id
    if tags:
        backend.tag_resource(job.arn, tags)
    run = hooks["service_job"]
    if run is not None:
        run(job)
    return job


def get_service_job(account_id: str, region: str, job_id: str) -> ServiceJob:
    job = service_state(account_id, region).jobs.get(job_id or "")
    if job is None:
        raise _client_error(f"Service job {job_id} does not exist")
    return job


def terminate_service_job(account_id: str, region: str, job_id: str, reason: str) -> None:
    if not reason:
        raise _client_error("reason must be provided")
    job = get_service_job(account_id, region, job_id)
    if job.status in SERVICE_ENDED:
        return
    job.is_terminated = True
    job.terminate_reason = reason
    if hooks["service_job"] is None:
        job.finish("FAILED", reason)


def _job_name_filter(filters: list[dict[str, Any]]) -> Any:
    """ListServiceJobs' JOB_NAME filter (the only one jobline uses): a case-insensitive match, or a
    prefix when the value ends with '*'; with a filter, jobStatus is ignored (Batch API reference,
    ListServiceJobs, filters)."""
    if len(filters) > 1:
        raise _client_error("Only one filter can be used at a time")
    if not filters:
        return None
    (only,) = filters
    if only.get("name") != "JOB_NAME" or len(only.get("values") or []) != 1:
        raise _client_error(f"filter {only.get('name')} with one value is not supported by the local stack")
    value = only["values"][0].lower()
    if value.endswith("*"):
        return lambda name: name.lower().startswith(value[:-1])
    return lambda name: name.lower() == value


def adapt_batch_service_jobs() -> None:
    """moto 5.2.5 has no Batch service jobs: no service environments, no SAGEMAKER_TRAINING job
    queues, no SubmitServiceJob / DescribeServiceJob / ListServiceJobs / TerminateServiceJob.
    Add them to its Batch backend and HTTP routes (in-process and server mode) with AWS's shapes:
    clientToken idempotency, the 10 KiB serviceRequestPayload quota, queue type checks."""
    from moto.batch import urls
    from moto.batch.models import JobQueue
    from moto.batch.responses import BatchResponse

    def body(self: Any) -> dict[str, Any]:
        return json.loads(self.body or "{}")

    def createserviceenvironment(self: Any) -> str:
        params = body(self)
        state = service_state(self.current_account, self.region)
        name = params.get("serviceEnvironmentName")
        kind = params.get("serviceEnvironmentType")
        if not name or kind not in SERVICE_JOB_TYPES:
            raise _client_error("serviceEnvironmentName and serviceEnvironmentType SAGEMAKER_TRAINING are required")
        limits = params.get("capacityLimits") or []
        if not limits or any(int(limit.get("maxCapacity", 0)) < 1 for limit in limits):
            raise _client_error("capacityLimits: at least one limit with maxCapacity >= 1 is required")
        arn = f"arn:aws:batch:{self.region}:{self.current_account}:service-environment/{name}"
        with state.lock:
            if arn in state.environments:
                raise _client_error(f"Service environment {name} already exists")
            state.environments[arn] = ServiceEnvironment(
                name, arn, kind, params.get("state", "ENABLED"), limits, params.get("tags") or {}
            )
        return json.dumps({"serviceEnvironmentName": name, "serviceEnvironmentArn": arn})

    def _environment(state: _ServiceState, identifier: str) -> ServiceEnvironment:
        for environment in state.environments.values():
            if identifier in (environment.arn, environment.name):
                return environment
        raise _client_error(f"Service environment {identifier} does not exist")

    def describeserviceenvironments(self: Any) -> str:
        state = service_state(self.current_account, self.region)
        wanted = body(self).get("serviceEnvironments") or []
        found = [e for e in state.environments.values() if not wanted or e.arn in wanted or e.name in wanted]
        return json.dumps({"serviceEnvironments": [e.describe() for e in found]})

    def updateserviceenvironment(self: Any) -> str:
        params = body(self)
        environment = _environment(
            service_state(self.current_account, self.region), params.get("serviceEnvironment", "")
        )
        if "state" in params:
            environment.state = params["state"]
        if "capacityLimits" in params:
            environment.capacity_limits = params["capacityLimits"]
        return json.dumps({"serviceEnvironmentName": environment.name, "serviceEnvironmentArn": environment.arn})

    def deleteserviceenvironment(self: Any) -> str:
        state = service_state(self.current_account, self.region)
        environment = _environment(state, body(self).get("serviceEnvironment", ""))
        with state.lock:
            state.environments.pop(environment.arn, None)
        return ""

    original_createjobqueue = BatchResponse.createjobqueue

    def createjobqueue(self: Any) -> str:
        params = body(self)
        queue_type = params.get("jobQueueType", "ECS")
        if queue_type not in SERVICE_JOB_TYPES:
            if params.get("serviceEnvironmentOrder"):
                raise _client_error("serviceEnvironmentOrder is only for service job queues (jobQueueType)")
            return original_createjobqueue(self)
        backend = batch_backend(self.current_account, self.region)
        state = service_state(self.current_account, self.region)
        order = params.get("serviceEnvironmentOrder") or []
        if params.get("computeEnvironmentOrder"):
            raise _client_error(f"a {queue_type} job queue takes serviceEnvironmentOrder, not computeEnvironmentOrder")
        if not order:
            raise _client_error("serviceEnvironmentOrder must have at least one service environment")
        for item in order:
            environment = _environment(state, item.get("serviceEnvironment", ""))
            if environment.type != queue_type:
                raise _client_error(f"service environment {environment.name} is not of type {queue_type}")
            item["serviceEnvironment"] = environment.arn
        name = params.get("jobQueueName")
        if not name or params.get("priority") is None:
            raise _client_error("jobQueueName and priority must be provided")
        if backend.get_job_queue_by_name(name) is not None:
            raise _client_error(f"Job queue {name} already exists")
        queue = JobQueue(
            name,
            params["priority"],
            params.get("state", "ENABLED"),
            [],
            [],
            schedule_policy=params.get("schedulingPolicyArn"),
            backend=backend,
            tags=params.get("tags"),
        )
        queue.jobline_queue_type = queue_type
        queue.jobline_service_order = order
        backend._job_queues[queue.arn] = queue
        return json.dumps({"jobQueueArn": queue.arn, "jobQueueName": queue.name})

    original_describe = JobQueue.describe

    def describe_queue(self: Any) -> dict[str, Any]:
        described = original_describe(self)
        if getattr(self, "jobline_queue_type", None):
            described.update(jobQueueType=self.jobline_queue_type, serviceEnvironmentOrder=self.jobline_service_order)
        return described

    original_submitjob = BatchResponse.submitjob

    def submitjob(self: Any) -> str:
        queue = batch_backend(self.current_account, self.region).get_job_queue(body(self).get("jobQueue", ""))
        if queue is not None and getattr(queue, "jobline_queue_type", None):
            raise _client_error(f"Job queue {queue.name} is a {queue.jobline_queue_type} queue: use SubmitServiceJob")
        return original_submitjob(self)

    def submitservicejob(self: Any) -> str:
        job = submit_service_job(self.current_account, self.region, body(self))
        return json.dumps({"jobArn": job.arn, "jobName": job.name, "jobId": job.job_id})

    def describeservicejob(self: Any) -> str:
        return json.dumps(get_service_job(self.current_account, self.region, body(self).get("jobId", "")).describe())

    def terminateservicejob(self: Any) -> str:
        params = body(self)
        terminate_service_job(self.current_account, self.region, params.get("jobId", ""), params.get("reason", ""))
        return "{}"

    def listservicejobs(self: Any) -> str:
        params = body(self)
        state = service_state(self.current_account, self.region)
        backend = batch_backend(self.current_account, self.region)
        queue = _service_queue(backend, params["jobQueue"]) if params.get("jobQueue") else None
        status = params.get("jobStatus")
        named = _job_name_filter(params.get("filters") or [])
        jobs = [
            j
            for j in list(state.jobs.values())
            if (queue is None or j.queue_arn == queue.arn)
            and (named(j.name) if named else status is None or j.status == status)
        ]
        jobs.sort(key=lambda j: j.created_at, reverse=True)
        start = int(params.get("nextToken") or 0)
        size = int(params.get("maxResults") or 100)
        page = jobs[start : start + size]
        result: dict[str, Any] = {"jobSummaryList": [j.summary() for j in page]}
        if start + size < len(jobs):
            result["nextToken"] = str(start + size)
        return json.dumps(result)

    for handler in (
        createserviceenvironment,
        describeserviceenvironments,
        updateserviceenvironment,
        deleteserviceenvironment,
        submitservicejob,
        describeservicejob,
        terminateservicejob,
        listservicejobs,
    ):
        add(BatchResponse, handler.__name__, handler)
        urls.url_paths["{0}/v1/" + handler.__name__ + "$"] = BatchResponse.dispatch
    replace(BatchResponse, "createjobqueue", createjobqueue)
    replace(BatchResponse, "submitjob", submitjob)
    replace(JobQueue, "describe", describe_queue)
