"""jobline's run rules as the ASL checks see them, read from wherever jobline keeps them.

`rules()` is the one place that knows where the vocabularies live: when the backend status
tables move into jobline/backends/<type>.py, repoint it here and nothing else.
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
    runtime_exceeded_words: tuple[str, ...]
    batch_timeout_reason: str
    is_final_attempt: Callable[[dict[str, Any], int, RunStatus], bool]


@lru_cache(maxsize=1)
def rules() -> Rules:
    from jobline import catalog, status

    def statuses(*tables: Mapping[str, Any]) -> frozenset[str]:
        return frozenset().union(*tables)

    backends = {
        "batch": BackendRules(
            statuses(status.BATCH_RANK, status.BATCH_STATUS),
            lambda s, reason=None, exit_code=None: status.map_batch_status(s, reason, exit_code),
        ),
        "batch_service": BackendRules(
            statuses(status.SERVICE_RANK, status.SERVICE_STATUS),
            lambda s, reason=None: status.map_service_status(s, reason),
        ),
        "sagemaker_processing": BackendRules(
            statuses(status.SAGEMAKER_RANK, status.SAGEMAKER_STATUS),
            lambda s, reason=None: status.map_sagemaker_status(s, reason),
        ),
        "glue": BackendRules(statuses(status.GLUE_RANK, status.GLUE_STATUS), lambda s: status.map_glue_state(s)),
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
        runtime_exceeded_words=tuple(status._RUNTIME_EXCEEDED),
        batch_timeout_reason=status.BATCH_TIMEOUT_REASON,
        is_final_attempt=status.is_final_attempt,
    )
