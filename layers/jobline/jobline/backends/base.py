"""The contract every backend module meets, and what the backend modules share.

A backend is one module in this package: its catalog model, the execution input it adds for
the state machine, its status table, its state change events and how one becomes an
observation of a run's attempt, its describe call (for the reconciler) and its stop call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict

from jobline.clock import iso_z
from jobline.errors import RejectedInput
from jobline.status import Reason, RunStatus

if TYPE_CHECKING:
    from jobline.deps import Deps
    from jobline.settings import Settings

RUN_ID_TAG = "jobline:run-id"
ATTEMPT_TAG = "jobline:attempt"
_BACKEND_NAME = re.compile(r"^(?P<run_id>[a-z][a-z0-9-]*-[0-9a-f]{20})-(?P<attempt>\d+)$")
# SageMaker job names are at most 63 characters: "<run id>-<attempt>" must fit.
SAGEMAKER_NAME_LIMIT = 63
# Words with which SageMaker and Batch service jobs say a job hit its maximum runtime.
_RUNTIME_EXCEEDED = ("maxruntimeexceeded", "max runtime", "timeout", "timed out", "duration exceeded")


@dataclass(frozen=True)
class RunSpec:
    """What a backend needs of the run whose execution input it builds."""

    run_id: str
    job_name: str
    timeout_seconds: int
    max_attempts: int
    arguments: dict[str, str]
    environment: dict[str, str]  # every attempt's, JOBLINE_ATTEMPT aside (the state machine adds it)


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
    events: Mapping[str, type[EventBridgeModel]]  # detail-type -> the event's model
    # Bytes of trigger event that travel inline in the job's environment; None: Settings' default.
    inline_event_limit: int | None
    # SageMaker names jobs "<run id>-<attempt>" within a limit; None: no limit to check.
    job_name_limit: int | None
    # Where the console shows an attempt's backend job ({region}, {job_id}); None: no link.
    job_console_path: str | None

    def execution_input(self, backend: Any, run: RunSpec, settings: Settings) -> dict[str, Any]:
        """This backend's part of the execution input (see jobline.runs.execution_input)."""
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
    """An event's detail: AWS adds fields, so unknown ones are ignored."""

    model_config = ConfigDict(extra="ignore")


def run_attempt_from_name(name: str) -> tuple[str, int] | None:
    """A backend job named `<run id>-<attempt>`, as jobline names them."""
    if match := _BACKEND_NAME.match(name):
        return match["run_id"], int(match["attempt"])
    return None


def run_attempt_from_tags(tags: Mapping[str, str]) -> tuple[str, int] | None:
    if RUN_ID_TAG in tags and tags.get(ATTEMPT_TAG, "").isdigit():
        return tags[RUN_ID_TAG], int(tags[ATTEMPT_TAG])
    return None


def observed(
    event: EventBridgeModel,
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
        **details,
    }


def as_event(model: type[EventBridgeModel], source: str, detail_type: str, detail: dict[str, Any], at: str) -> Any:
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


def ran_out_of_time(reason: str | None) -> bool:
    """Whether a SageMaker (or Batch service job) reason says the job hit its maximum runtime."""
    return bool(reason) and any(word in reason.lower() for word in _RUNTIME_EXCEEDED)


def require_queue(queue: str, job_name: str, needs: str) -> str:
    if not queue:
        raise RejectedInput(
            f"job {job_name!r} needs the {needs} job queue, which this stack does not have "
            "(deploy with EnableGpuCompute=true or give the job an explicit job_queue)"
        )
    return queue
