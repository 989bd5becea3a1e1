"""Errors jobline raises on purpose. Each bad-input error carries a short code for metrics."""

from __future__ import annotations

from dataclasses import dataclass


class JoblineError(Exception):
    """Base class of every error jobline raises on purpose."""


@dataclass(frozen=True)
class CatalogProblem:
    """One thing wrong with a catalog: the rule it breaks, and where (job and field), when known."""

    rule: str
    job: str | None = None  # the job's name, or "#<index>" for a job without one; None: the catalog's
    field: str | None = None  # dotted path in the job (or the catalog); None: not about one field

    def __str__(self) -> str:
        if self.field is None:
            return self.rule if self.job is None else f"job {self.job!r}: {self.rule}"
        where = "catalog" if self.job is None else f"job {self.job!r}"
        return f"{where}: field {self.field}: {self.rule}"


class CatalogError(JoblineError):
    """The catalog file is unreadable or invalid: `problems` says what, each with its job and field
    (the message is the problems, one a line)."""

    def __init__(self, *problems: CatalogProblem | str) -> None:
        self.problems = tuple(p if isinstance(p, CatalogProblem) else CatalogProblem(p) for p in problems)
        super().__init__("\n".join(map(str, self.problems)))


class RowContended(JoblineError):
    """A run row kept changing under concurrent writers for as long as the caller could wait: the
    update was not made, and the caller hands its input back for redelivery."""


class RejectedInput(JoblineError):
    """A trigger or request that jobline refuses. `code` becomes the metric dimension."""

    code = "Rejected"


class UnknownJobError(RejectedInput):
    code = "UnknownJob"


class NoMatchingJob(RejectedInput):
    code = "NoMatchingJob"


class MalformedEvent(RejectedInput):
    code = "MalformedEvent"


class InvalidArguments(RejectedInput):
    code = "InvalidArguments"
