"""AWS's contracts, enforced by the local stack on every request moto receives.

One registration point: `CHECKS` (what is checked, in order) and `install()` (called where the
moto adaptations are applied: the local stack's server process and the integration tests). Each
contract is its own module and cites its AWS source; docs/CONTRACTS.md lists them all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from jobline_local.contracts import (
    client_token,
    dispatch,
    errors,
    names,
    service_payload,
    sfn_history,
    throttling,
    validation,
)
from jobline_local.contracts.core import Call, Record, Refusal, Violation, record

logger = logging.getLogger(__name__)

# Rate first (AWS throttles before it reads a request), then the model, then stateful rules.
RATE_CHECKS = (throttling.check,)
MODEL_CHECKS = (validation.check, service_payload.check, names.check)
STATE_CHECKS = (client_token.check,)

__all__ = ["Call", "Record", "Refusal", "Violation", "handle", "install", "record"]


def _refuse(call: Call, refusal: Refusal) -> Refusal:
    logger.warning("contracts: refused %s.%s with %s: %s", call.service, call.operation, refusal.code, refusal.message)
    return refusal


def handle(call: Call) -> list[Callable[[], None]]:
    """Check one call: raise the Refusal AWS would answer with, or return what the stateful
    contracts do once moto has accepted it."""
    try:
        for rate_check in RATE_CHECKS:
            rate_check(call)
    except Refusal as refusal:
        raise _refuse(call, refusal) from None
    found = [v for model_check in MODEL_CHECKS for v in model_check(call)]
    with record.lock:
        record.validated.add((call.service, call.operation))
        record.violations.extend(found)
    refused = [v for v in found if v.key not in record.tolerated]
    if refused:
        code, status = errors.validation_error(call.service, call.operation, refused[0].member)
        count = f"{len(refused)} validation error{'s' if len(refused) > 1 else ''} detected: "
        raise _refuse(call, Refusal(code, count + "; ".join(v.message for v in refused), status))
    try:
        return [commit for state_check in STATE_CHECKS for commit in state_check(call)]
    except Refusal as refusal:
        raise _refuse(call, refusal) from None


def install() -> None:
    """Enforce every contract on moto (idempotent)."""
    dispatch.install(handle)
    sfn_history.install()
