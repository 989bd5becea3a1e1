"""`jobline jobs validate FILE`: a catalog file checked before it ships, as the stack will check it.

The checks are the runtime's own (jobline.catalog.load_catalog) and those `make generate` adds
when it renders the schedules (codegen). Nothing is re-implemented here: each line of the
CatalogError they raise is one problem, written `<where>: field <field>: <rule>` (the catalog's
convention), and is split back into those parts for the report.
"""

from __future__ import annotations

import ast
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from jobline.catalog import Catalog, load_catalog
from jobline.errors import CatalogError
from jobline_tools import codegen

# `job 'name'`, `job '#3'` (a job without a name) or `job 'name' schedule 'nightly'`; or `catalog`.
PROBLEM = re.compile(
    r"^(?:catalog|job (?P<job>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")[^:]*): field (?P<field>.+?): (?P<rule>.+)$"
)


@dataclass(frozen=True)
class Problem:
    message: str  # the line as the runtime wrote it
    job: str | None = None
    field: str | None = None
    rule: str | None = None


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
        return CatalogReport(path, None, problems(str(error)))
    return CatalogReport(path, catalog, [])


def problems(message: str) -> list[Problem]:
    """One Problem per `<where>: field ...` line; any other line starts a problem without a job or
    field, or continues the one before it (a YAML parser's context lines, say)."""
    found: list[Problem] = []
    for line in message.splitlines():
        if match := PROBLEM.match(line):
            job = ast.literal_eval(match["job"]) if match["job"] else None
            found.append(Problem(line, job, match["field"], match["rule"]))
        elif found:
            last = found[-1]
            found[-1] = replace(last, message=f"{last.message}\n{line}", rule=last.rule and f"{last.rule}\n{line}")
        else:
            found.append(Problem(line))
    return found
