"""Every backend jobline runs jobs on, one module each, in one registry keyed by the catalog's
`backend.type`. Adding a backend: see docs/DESIGN.md ("Adding a backend")."""

from __future__ import annotations

from typing import Any

from jobline.backends import batch, batch_service, glue, sagemaker_processing
from jobline.backends.base import AttemptDetail, Backend, Observation, RunSpec, StateChangeEvent

BACKENDS: dict[str, Backend] = {
    backend.type: backend
    for backend in (batch.BACKEND, batch_service.BACKEND, sagemaker_processing.BACKEND, glue.BACKEND)
}
# Every state change event jobline consumes: detail-type -> its model, and each model's backend.
EVENT_MODELS: dict[str, type[StateChangeEvent]] = {
    detail_type: model for backend in BACKENDS.values() for detail_type, model in backend.events.items()
}
_BACKEND_OF_EVENT: dict[type[StateChangeEvent], Backend] = {
    model: backend for backend in BACKENDS.values() for model in backend.events.values()
}


def backend_of_event(event: Any) -> Backend:
    """The backend whose model parsed `event` (one of EVENT_MODELS' models)."""
    return _BACKEND_OF_EVENT[type(event)]


__all__ = [
    "BACKENDS",
    "EVENT_MODELS",
    "AttemptDetail",
    "Backend",
    "Observation",
    "RunSpec",
    "StateChangeEvent",
    "backend_of_event",
]
