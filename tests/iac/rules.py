"""jobline's run rules as the ASL checks see them, read from wherever jobline keeps them.

`rules()` is the one place that knows where the vocabularies live (jobline.status for the run,
jobline/backends/<type>.py for each backend's statuses and timeout signal).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, get_args

from jobline.status import RunStatus

Outcome = tuple[RunStatus, str]


@dataclass(frozen=True)
class BackendRules:
    statuses: frozenset[str]  # every status of the backend jobline knows
    # The (status, reason) jobline gives an attempt that ended in this backend status.
    outcome: Callable[..., Outcome]


@dataclass(frozen=True)
class Rules:
    run_statuses: frozenset[str]
    terminal: frozenset[str]
    reasons: frozenset[str]
    ranks: Mapping[str, int]  # RANK_PENDING -> 0, ...
    run_rank: Mapping[str, int]  # run status -> the rank a row in that status has
    backends: Mapping[str, BackendRules]
    max_runtime_exceeded: str  # SageMaker's word for a job stopped at its maximum runtime
    batch_timeout_reason: str
    is_final_attempt: Callable[[dict[str, Any], int, RunStatus], bool]


@lru_cache(maxsize=1)
def rules() -> Rules:
    from jobline import catalog, status
    from jobline.backends import base, batch, batch_service, glue, sagemaker_processing

    def statuses(*tables: Mapping[str, Any]) -> frozenset[str]:
        return frozenset().union(*tables)

    backends = {
        "batch": BackendRules(
            statuses(batch.BATCH_RANK, batch.BATCH_STATUS),
            lambda s, reason=None, exit_code=None: batch.map_batch_status(s, reason, exit_code),
        ),
        "batch_service": BackendRules(
            statuses(batch_service.SERVICE_RANK, batch_service.SERVICE_STATUS),
            lambda s, reason=None: batch_service.map_service_status(s, reason),
        ),
        "sagemaker_processing": BackendRules(
            statuses(sagemaker_processing.SAGEMAKER_RANK, sagemaker_processing.SAGEMAKER_STATUS),
            lambda s, reason=None: sagemaker_processing.map_sagemaker_status(s, reason),
        ),
        "glue": BackendRules(statuses(glue.GLUE_RANK, glue.GLUE_STATUS), lambda s: glue.map_glue_state(s)),
    }
    # The catalog's backend types must be exactly the ones these rules cover.
    (union, *_) = get_args(catalog.BackendConfig)
    declared = {get_args(model.model_fields["type"].annotation)[0] for model in get_args(union)}
    assert declared == set(backends), f"backend types {sorted(declared)} vs rules for {sorted(backends)}"
    return Rules(
        run_statuses=frozenset(s.value for s in RunStatus),
        terminal=frozenset(s.value for s in status.TERMINAL),
        reasons=frozenset(r.value for r in status.Reason),
        ranks={name: getattr(status, name) for name in dir(status) if name.startswith("RANK_")},
        run_rank={s.value: rank for s, rank in status.RUN_RANK.items()},
        backends=backends,
        max_runtime_exceeded=base.MAX_RUNTIME_EXCEEDED,
        batch_timeout_reason=batch.BATCH_TIMEOUT_REASON,
        is_final_attempt=status.is_final_attempt,
    )
