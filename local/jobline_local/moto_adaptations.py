"""Every adaptation of moto's internals, in one place.

jobline runs locally on moto (pinned in requirements-dev.lock). Where the pinned moto falls
short of AWS, the gap is closed here and nowhere else, and tests/test_moto_adaptations.py holds
one test per adaptation that fails if moto stops behaving as the adaptation assumes.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import botocore.session
from botocore.model import OperationModel

PINNED_MOTO = "5.2.5"
_applied = False


@lru_cache(maxsize=64)
def _operation(service: str, action: str) -> OperationModel:
    """botocore's model of `action`, given in camelCase (ASL) or snake_case (moto's own calls)."""
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model(service)
    wanted = xform_name(action)
    for name in model.operation_names:
        if xform_name(name) == wanted:
            return model.operation_model(name)
    raise KeyError(f"{service} has no operation {action}")


def _adapt_optimized_integration_casing() -> None:
    """Optimized integrations (batch:submitJob.sync, ...) take PascalCase parameters and return
    PascalCase output. AWS translates both ways; moto 5.2.5's port leaves `_normalise_parameters`
    and `_normalise_response` empty, so boto3 is called with `JobName=` and fails, and the
    output keeps boto3's camelCase. Translate with botocore's shapes, as AWS does."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch import (
        StateTaskServiceBatch,
    )

    def normalise_parameters(
        self: Any, parameters: dict, boto_service_name: str | None = None, service_action_name: str | None = None
    ) -> None:
        service = self._get_boto_service_name(boto_service_name)
        operation = _operation(service, service_action_name or self.resource.api_action)
        self._to_boto_request(parameters, operation.input_shape)

    def normalise_response(
        self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None
    ) -> None:
        service = self._get_boto_service_name(boto_service_name)
        operation = _operation(service, service_action_name or self.resource.api_action)
        self._from_boto_response(response, operation.output_shape)

    StateTaskServiceBatch._normalise_parameters = normalise_parameters
    StateTaskServiceBatch._normalise_response = normalise_response


def apply() -> None:
    """Apply every adaptation once. Refuses a moto other than the pinned one: each adaptation
    was written against its internals."""
    global _applied
    if _applied:
        return
    import moto

    if moto.__version__ != PINNED_MOTO:
        raise RuntimeError(f"jobline's local stack is adapted to moto {PINNED_MOTO}, found {moto.__version__}")
    _adapt_optimized_integration_casing()
    _applied = True
