"""One registry of backends: every backend type the catalog accepts and every state change
detail-type template.yaml routes to the state change function has its backend module."""

from __future__ import annotations

import typing
from typing import Any

from jobline.backends import BACKENDS, EVENT_MODELS
from jobline.catalog import Job
from tests.cfn import resource


def _catalog_types() -> set[str]:
    union = typing.get_args(Job.model_fields["backend"].annotation)
    return {typing.get_args(model.model_fields["type"].annotation)[0] for model in union}


def _routed_detail_types() -> set[str]:
    events: dict[str, Any] = resource("StateChangeFunction")["Properties"]["Events"]
    return {
        detail_type
        for event in events.values()
        if event["Type"] == "EventBridgeRule"
        for detail_type in event["Properties"]["Pattern"]["detail-type"]
    }


def test_every_backend_type_of_the_catalog_has_its_backend() -> None:
    assert _catalog_types() == set(BACKENDS)
    for backend_type, backend in BACKENDS.items():
        assert backend.type == backend_type
        assert typing.get_args(backend.model.model_fields["type"].annotation) == (backend_type,)


def test_every_routed_detail_type_has_its_event_model() -> None:
    routed = _routed_detail_types()
    assert routed, "no EventBridge rule routes to the state change function"
    assert routed == set(EVENT_MODELS)


def test_each_event_model_belongs_to_one_backend() -> None:
    owners = [model for backend in BACKENDS.values() for model in set(backend.events.values())]
    assert len(owners) == len(set(owners))
