"""The contract every backend module meets, and what the backend modules share.

A backend is one module in this package: its catalog model, its submit request (built once per
run, put in the execution input) and how the submitter submits one attempt of it and finds an
attempt it submitted before, its status table, its state change events and how one becomes an
observation of a run's attempt, its describe call (for the reconciler) and its stop call.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jobline.clock import iso_z
from jobline.errors import RejectedInput
from jobline.status import Reason, RunStatus

if TYPE_CHECKING:
    from jobline.deps import Deps
    from jobline.settings import Settings

RUN_ID_TAG = "jobline:run-id"
ATTEMPT_TAG = "jobline:attempt"
JOB_TAG = "jobline:job"
ATTEMPT_VARIABLE = "JOBLINE_ATTEMPT"
# A boto3 client by service name (jobline.deps.Deps.client).
Clients = Callable[[str], Any]
# Run ids are "<job name>-<20 hex>" (jobline.triggers.run_id; job names are at most 40 characters),
# attempts 1..10 (the catalog's RetryStrategy): anything longer is not a name jobline gave.
_RUN_ID = r"[a-z][a-z0-9-]{0,39}-[0-9a-f]{20}"
_ATTEMPT = r"[1-9][0-9]{0,3}"
_BACKEND_NAME = re.compile(rf"(?P<run_id>{_RUN_ID})-(?P<attempt>{_ATTEMPT})")
# The one execution role jobline passes to SageMaker: the state machine's iam:PassRole covers the
# stack's SageMakerExecutionRole alone (template.yaml), so a job naming another role would fail at
# run time with AccessDenied. The catalog refuses one instead.
STACK_ROLE_ONLY = (
    "jobline passes only the stack's SageMaker execution role (its iam:PassRole grant covers that role"
    " alone); remove {field}, or grant the role in template.yaml and make it the stack's"
)
# SageMaker job names are at most 63 characters: "<run id>-<attempt>" must fit.
SAGEMAKER_NAME_LIMIT = 63
# SageMaker's name for a job that its StoppingCondition.MaxRuntimeInSeconds stopped: a training
# job's SecondaryStatus (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeTrainingJob.html),
# which SageMaker writes into a job's FailureReason and Batch relays in a service job's statusReason.
# Matched as written (case-sensitive, as the state machine's StringMatches is), never as a loose word:
# "AlgorithmError: timeout waiting for data" is the job's own failure, not its runtime limit.
MAX_RUNTIME_EXCEEDED = "MaxRuntimeExceeded"
# Every string an event puts in a run row is cut to this many UTF-8 bytes (with TRUNCATED at its
# end), so a row of at most 10 attempts stays far below DynamoDB's 400 KB item limit
# (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html).
EVENT_TEXT_LIMIT_BYTES = 1024
TRUNCATED = "…[truncated]"
# Epoch milliseconds an event may carry: 1970 to the end of year 9999 (Python's datetime range).
EPOCH_MS_MAX = 253_402_300_799_999
EpochMs = Annotated[int, Field(ge=0, le=EPOCH_MS_MAX)]
EpochMsNumber = Annotated[float, Field(ge=0, le=EPOCH_MS_MAX, allow_inf_nan=False)]


@dataclass(frozen=True)
class RunSpec:
    """What a backend needs of the run whose execution input it builds."""

    run_id: str
    job_name: str
    timeout_seconds: int
    max_attempts: int
    arguments: dict[str, str]
    environment: dict[str, str]  # every attempt's, JOBLINE_ATTEMPT aside (the submitter adds it)


@dataclass(frozen=True)
class Observation:
    """One event's news of one attempt: `observed` as jobline.status.apply_observation takes it."""

    run_id: str
    attempt: int
    observed: dict[str, Any]


@dataclass(frozen=True)
class AttemptDetail:
    """Detail for an attempt that does not move its run (kept under attempts.N.<name>, newest wins)."""

    run_id: str
    attempt: int
    name: str
    detail: dict[str, Any]


class Backend(Protocol):
    """One backend. `type` is the catalog's `backend.type`, and the key of the registry."""

    type: str
    model: type[BaseModel]  # the catalog's `backend:` entry for this type
    events: Mapping[str, type[StateChangeEvent]]  # detail-type -> the event's model
    # Bytes of trigger event that travel inline in the job's environment; None: Settings' default.
    inline_event_limit: int | None
    # SageMaker names jobs "<run id>-<attempt>" within a limit; None: no limit to check.
    job_name_limit: int | None
    # Where the console shows an attempt's backend job ({region}, {job_id}); None: no link.
    job_console_path: str | None

    # The API that submits one attempt (SubmitJob, ...): it names the submit queue and its rate.
    submit_api: str

    def submit_request(self, backend: Any, run: RunSpec, settings: Settings) -> dict[str, Any]:
        """The run's submit request: everything but each attempt's own values, as JSON. Refuses
        (RejectedInput) what the backend cannot run, before anything is written."""
        ...

    def submit(self, request: dict[str, Any], run_id: str, attempt: int, clients: Clients) -> str:
        """Submit one attempt (named attempt_name(run_id, attempt), JOBLINE_ATTEMPT and the
        jobline tags added): the backend job's id. A ClientError is AWS's answer, unchanged."""
        ...

    def find_submitted(self, request: dict[str, Any], run_id: str, attempt: int, clients: Clients) -> str | None:
        """The id of the attempt's backend job if one was submitted (a response may have been lost)."""
        ...

    def observe(self, event: Any, glue: Any) -> Observation | AttemptDetail | None:
        """What one of this backend's events says; None for a job jobline did not start."""
        ...

    def describe(self, row: dict[str, Any], attempt: int, record: dict[str, Any], deps: Deps) -> Any | None:
        """The attempt's backend job now, as one of this backend's events; None if there is none."""
        ...

    def stop(self, row: dict[str, Any], attempt: int, record: dict[str, Any], reason: str, deps: Deps) -> str | None:
        """Stop the attempt's backend job: the id of the job terminated, or None when there is none
        yet or stopping the execution stops it already."""
        ...


class EventDetail(BaseModel):
    """An event's detail: AWS adds fields, so unknown ones are ignored (validator built on first use)."""

    model_config = ConfigDict(extra="ignore", defer_build=True)


class StateChangeEvent(BaseModel):
    """A backend's state change event: EventBridge's envelope, each backend sets `detail`
    (https://docs.aws.amazon.com/eventbridge/latest/ref/overiew-event-structure.html). The fields
    of Powertools' EventBridgeModel, not the class: importing Powertools' parser package costs a
    handler's cold import a quarter of `import boto3` (docs/PERFORMANCE.md). Validators are built on
    first use: a handler sees one backend's events."""

    model_config = ConfigDict(populate_by_name=True, defer_build=True)

    version: str
    id: str
    source: str
    account: str
    time: datetime
    region: str
    resources: list[str]
    detail_type: str = Field(alias="detail-type")
    detail: Any
    replay_name: str | None = Field(None, alias="replay-name")

    @field_validator("time")
    @classmethod
    def _in_utc(cls, time: datetime) -> datetime:
        """EventBridge's `time` is UTC ("Z"); a time that has no UTC form is refused, not crashed on."""
        try:
            return time.replace(tzinfo=UTC) if time.tzinfo is None else time.astimezone(UTC)
        except OverflowError as error:
            raise ValueError(f"time {time} is out of range") from error


def attempt_name(run_id: str, attempt: int) -> str:
    """What jobline names an attempt's backend job (run_attempt_from_name reads it back)."""
    return f"{run_id}-{attempt}"


def run_attempt_from_name(name: str) -> tuple[str, int] | None:
    """A backend job named `<run id>-<attempt>`, as jobline names them."""
    if match := _BACKEND_NAME.fullmatch(name):
        return match["run_id"], int(match["attempt"])
    return None


def run_attempt(run_id: object, attempt: object) -> tuple[str, int] | None:
    """A run id and attempt number as jobline writes them (in tags, in Glue arguments), else None."""
    if isinstance(run_id, str) and isinstance(attempt, str) and re.fullmatch(_RUN_ID, run_id):
        return (run_id, int(attempt)) if re.fullmatch(_ATTEMPT, attempt) else None
    return None


def run_attempt_from_tags(tags: Mapping[str, str]) -> tuple[str, int] | None:
    return run_attempt(tags.get(RUN_ID_TAG), tags.get(ATTEMPT_TAG))


def bounded(value: Any) -> Any:
    """A string from an event as a row may hold it: valid UTF-8 (a lone surrogate becomes "?") and at
    most EVENT_TEXT_LIMIT_BYTES, cut with TRUNCATED; anything else as is."""
    if not isinstance(value, str):
        return value
    encoded = value.encode("utf-8", "replace")
    if len(encoded) <= EVENT_TEXT_LIMIT_BYTES:
        return encoded.decode("utf-8")
    room = EVENT_TEXT_LIMIT_BYTES - len(TRUNCATED.encode())
    return encoded[:room].decode("utf-8", "ignore") + TRUNCATED


def tiebreak(event: StateChangeEvent) -> str:
    """A stable digest of an event's detail: orders two events that agree on everything else."""
    detail = event.detail.model_dump(mode="json") if isinstance(event.detail, BaseModel) else event.detail
    return hashlib.sha256(json.dumps(detail, sort_keys=True, default=str).encode()).hexdigest()[:16]


def observed(
    event: StateChangeEvent,
    attempt: int,
    backend_status: str,
    mapped: tuple[RunStatus, Reason],
    rank: int,
    **details: Any,
) -> dict[str, Any]:
    """An observation of an attempt, as jobline.status.apply_observation takes it."""
    return {
        "attempt": attempt,
        "backend_status": backend_status,
        "status": mapped[0].value,
        "reason": mapped[1].value,
        "rank": rank,
        "event_time": iso_z(event.time),
        "tiebreak": tiebreak(event),
        **{name: bounded(value) for name, value in details.items()},
    }


def as_event(model: type[StateChangeEvent], source: str, detail_type: str, detail: dict[str, Any], at: str) -> Any:
    """A describe call's answer in the shape of the backend's state change event."""
    return model.model_validate(
        {
            "version": "0",
            "id": f"jobline-reconciler-{at}",
            "detail-type": detail_type,
            "source": source,
            "account": "",
            "time": at,
            "region": "",
            "resources": [],
            "detail": detail,
        }
    )


def max_runtime_exceeded(reason: str | None) -> bool:
    """Whether a SageMaker (or Batch service job) reason says SageMaker stopped the job at its maximum runtime."""
    return bool(reason) and MAX_RUNTIME_EXCEEDED in reason


def require_queue(queue: str, job_name: str, needs: str) -> str:
    if not queue:
        raise RejectedInput(
            f"job {job_name!r} needs the {needs} job queue, which this stack does not have "
            "(deploy with EnableGpuCompute=true or give the job an explicit job_queue)"
        )
    return queue
