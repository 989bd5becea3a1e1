"""`jobline jobs validate FILE`: a catalog file checked before it ships, as the stack will check it.

The checks are the runtime's own (jobline.catalog.load_catalog) and those `make generate` adds
when it renders the schedules (codegen). Nothing is re-implemented here: the CatalogError they
raise carries its problems, each with its job, field and rule, and the report lists them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jobline.catalog import Catalog, load_catalog
from jobline.errors import CatalogError, CatalogProblem
from jobline_tools import codegen


@dataclass(frozen=True)
class Problem:
    message: str  # the problem as the runtime's CatalogError writes it
    job: str | None = None
    field: str | None = None
    rule: str | None = None

    @classmethod
    def of(cls, problem: CatalogProblem) -> Problem:
        return cls(str(problem), problem.job, problem.field, problem.rule)


@dataclass(frozen=True)
class CatalogReport:
    path: Path
    catalog: Catalog | None
    problems: list[Problem]

    def summary(self) -> dict[str, Any]:
        """Counts only for a catalog that loaded: an invalid one has none to speak of."""
        jobs = self.catalog.jobs if self.catalog else None
        return {
            "file": str(self.path),
            "valid": not self.problems,
            "jobs": None if jobs is None else len(jobs),
            "schedules": None if jobs is None else sum(len(job.triggers.schedule) for job in jobs),
            "errors": [asdict(problem) for problem in self.problems],
        }


def check_catalog(path: Path) -> CatalogReport:
    try:
        catalog = load_catalog(path)
        codegen.render(catalog, codegen.handwritten_rules(codegen.default_template().read_text()))
    except CatalogError as error:
        return CatalogReport(path, None, [Problem.of(problem) for problem in error.problems])
    return CatalogReport(path, catalog, [])
