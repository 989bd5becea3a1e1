"""SubmitServiceJob's clientToken. Batch API reference, SubmitServiceJob, clientToken: "If this
parameter is specified and two submit requests with identical payloads and clientTokens are
received, these requests are considered the same request and the second request is rejected."
https://docs.aws.amazon.com/batch/latest/APIReference/API_SubmitServiceJob.html
The rejection is Batch's client error, ClientException (400)."""

from __future__ import annotations

import json
from collections.abc import Callable

from jobline_local.contracts.core import Call, Refusal

# Tokens seen, kept on moto's Batch backend so that a moto reset forgets them with the jobs.
_ATTRIBUTE = "_jobline_contract_client_tokens"


def _seen(call: Call) -> dict[str, str]:
    from moto.batch.models import batch_backends

    backend = batch_backends[call.account][call.region]
    return backend.__dict__.setdefault(_ATTRIBUTE, {})


def check(call: Call) -> list[Callable[[], None]]:
    """Refuse a repeat; remember a new token once Batch has accepted its request."""
    if (call.service, call.operation) != ("batch", "SubmitServiceJob"):
        return []
    token = call.params.get("clientToken")
    if not token:
        return []
    request = json.dumps({k: v for k, v in call.params.items() if k != "clientToken"}, sort_keys=True, default=str)
    seen = _seen(call)
    if seen.get(token) == request:
        raise Refusal(
            "ClientException",
            f"A request with clientToken {token} and an identical payload was already received: "
            "it is considered the same request, and this second request is rejected",
        )
    return [lambda: seen.__setitem__(token, request)]
