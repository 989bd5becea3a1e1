"""A Batch service job's `serviceRequestPayload` is the JSON of a complete SageMaker
CreateTrainingJob request (Batch user guide, "Service job payloads": "the serviceRequestPayload
is the JSON of the SageMaker AI CreateTrainingJob request"; AWS's example payload sets
TrainingJobName). Check it against CreateTrainingJob's input shape, members named
`serviceRequestPayload.<Member>`."""

from __future__ import annotations

import json

from jobline_local.contracts.core import Call, Violation
from jobline_local.contracts.validation import violations_of

PAYLOAD_SHAPES = {"SAGEMAKER_TRAINING": ("sagemaker", "CreateTrainingJob")}


def check(call: Call) -> list[Violation]:
    if (call.service, call.operation) != ("batch", "SubmitServiceJob"):
        return []
    target = PAYLOAD_SHAPES.get(call.params.get("serviceJobType", ""))
    payload = call.params.get("serviceRequestPayload")
    if target is None or not isinstance(payload, str):
        return []  # the model check has already named a missing or unknown member
    try:
        request = json.loads(payload)
    except ValueError as error:
        request = error
    if not isinstance(request, dict):
        message = (
            "Value at 'serviceRequestPayload' failed to satisfy constraint:"
            f" Member must be a JSON object (a {target[1]} request)"
        )
        return [Violation(call.service, call.operation, "serviceRequestPayload", "json", message)]
    return [
        Violation(call.service, call.operation, v.member, f"{target[1]}:{v.rule}", v.message)
        for v in violations_of(*target, request, root="serviceRequestPayload")
    ]
