"""The job catalog: every job jobline can run, declared in one YAML file and validated here."""

from __future__ import annotations

import operator
import re
from functools import lru_cache, reduce
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from jobline import event_patterns
from jobline.backends import BACKENDS
from jobline.catalog_base import SECRET_NAME, CatalogModel
from jobline.errors import CatalogError, CatalogProblem, UnknownJobError
from jobline.schedule_expressions import Expression, time_zone

JOB_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$"
PARAMETER_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
RESERVED_ENV_PREFIX = "JOBLINE_"


class RetryStrategy(CatalogModel):
    attempts: int = Field(default=1, ge=1, le=10, description="Total attempts, the first included")
    # Step Functions refuses IntervalSeconds and MaxDelaySeconds below 1 (States Language, Retry).
    interval_seconds: int = Field(default=30, ge=1, le=86_400)
    backoff_rate: float = Field(default=2.0, ge=1.0, le=10.0)
    max_delay_seconds: int = Field(default=3600, ge=1, le=86_400)
    retry_on_timeout: bool = False

    @model_validator(mode="after")
    def _interval_fits_cap(self) -> RetryStrategy:
        # The cap bounds the growth of the delays; an interval above it could never be waited.
        if self.interval_seconds > self.max_delay_seconds:
            raise ValueError(
                f"interval_seconds {self.interval_seconds} is over max_delay_seconds {self.max_delay_seconds}:"
                " raise max_delay_seconds or shorten the interval"
            )
        return self

    def delays(self) -> list[float]:
        """Seconds Step Functions waits before attempt 2, 3, ...: the run's Task retrier waits
        min(IntervalSeconds x BackoffRate^(n-1), MaxDelaySeconds) before retry n, not rounded
        (30 s x 1.5^2 is 67.5 s). https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html"""
        return [
            min(self.interval_seconds * self.backoff_rate**k, self.max_delay_seconds) for k in range(self.attempts - 1)
        ]


class Parameter(CatalogModel):
    description: str = ""
    required: bool = False
    default: str | None = None
    max_length: int = Field(default=1024, ge=1, le=4096)


# The `backend:` entry of a job: one model per backend module (jobline.backends), told apart by `type`.
BackendConfig = Annotated[reduce(operator.or_, (b.model for b in BACKENDS.values())), Field(discriminator="type")]


class S3Trigger(CatalogModel):
    prefix: str = ""
    suffix: str = ""

    @model_validator(mode="after")
    def _narrow(self) -> S3Trigger:
        if not (self.prefix or self.suffix):
            raise ValueError("an S3 trigger needs a prefix, a suffix or both")
        return self


class BusTrigger(CatalogModel):
    pattern: dict[str, Any] = Field(description="EventBridge event pattern on source, detail-type, detail")
    idempotency_key: str | None = Field(
        default=None, description="Dotted path in the event (e.g. detail.order_id) that names one run"
    )
    arguments: dict[str, str] = Field(default_factory=dict, description="parameter -> dotted event path")

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, pattern: dict[str, Any]) -> dict[str, Any]:
        event_patterns.check(pattern)  # EventBridge matches it (one generated rule per trigger)
        return pattern


class ScheduleTrigger(CatalogModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,22}$")
    expression: str
    timezone: str = "UTC"
    description: str = ""
    arguments: dict[str, str] = Field(default_factory=dict)

    @field_validator("expression")
    @classmethod
    def _expression(cls, value: str) -> str:
        """Parsed by the parser the local stack's scheduler fires schedules with."""
        Expression(value)  # raises ExpressionError, a ValueError
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        time_zone(value)  # raises ExpressionError, a ValueError
        return value


class ManifestTrigger(CatalogModel):
    """A fan-out: each line of a manifest object (CSV with a header, or JSON Lines) under `prefix`
    of the input bucket becomes one run (jobline.fanouts)."""

    prefix: str = Field(min_length=1, description="Manifests are objects under this prefix of the input bucket")
    suffix: str = ""
    format: Literal["csv", "jsonl"]
    arguments: dict[str, str] = Field(
        default_factory=dict,
        description="parameter -> item field (CSV column, or dotted JSON path); empty: fields are parameters",
    )


class Triggers(CatalogModel):
    s3: list[S3Trigger] = Field(default_factory=list)
    bus: list[BusTrigger] = Field(default_factory=list)
    sqs: bool = False
    schedule: list[ScheduleTrigger] = Field(default_factory=list)
    manifest: list[ManifestTrigger] = Field(default_factory=list)


class Job(CatalogModel):
    name: str = Field(pattern=JOB_NAME_PATTERN)
    description: str = Field(min_length=1)
    backend: BackendConfig
    environment: dict[str, str] = Field(default_factory=dict)
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    timeout_seconds: int = Field(default=3600, ge=60, le=14 * 86_400, description="Per attempt")
    retry: RetryStrategy = Field(default_factory=RetryStrategy)
    # None: no limit of jobline's (the job queue's compute environment still bounds what runs).
    max_concurrent_runs: int | None = Field(default=None, ge=1, le=1000)
    triggers: Triggers = Field(default_factory=Triggers)
    local_command: list[str] | None = Field(
        default=None, description="What the local stack runs in place of the container"
    )

    @property
    def policy_id(self) -> str:
        """The id of the run state machine this job's runs execute in (one per retry policy,
        jobline_tools.codegen): attempts, interval, backoff, cap, retry on timeout, limit or not.
        Stable, and valid in a state machine name ([A-Za-z0-9-_], a backoff of 1.5 reads 1_5;
        str() of a float round-trips, so two rates never share an id)."""
        retry = self.retry
        backoff = str(retry.backoff_rate).removesuffix(".0").replace(".", "_")
        return (
            f"a{retry.attempts}-i{retry.interval_seconds}-b{backoff}-m{retry.max_delay_seconds}"
            f"-t{int(retry.retry_on_timeout)}-l{int(self.max_concurrent_runs is not None)}"
        )

    @model_validator(mode="after")
    def _name_fits_backend(self) -> Job:
        if limit := BACKENDS[self.backend.type].job_name_limit:
            longest = len(self.name) + 1 + 20 + 1 + len(str(self.retry.attempts))
            if longest > limit:
                raise ValueError(
                    f"job name {self.name!r} is too long for {self.backend.type}: its SageMaker job names"
                    f" ('<job>-<20 hex>-<attempt>') would be {longest} characters, over {limit}"
                )
        return self

    @field_validator("environment")
    @classmethod
    def _environment(cls, env: dict[str, str]) -> dict[str, str]:
        for key in env:
            if not re.match(ENV_NAME_PATTERN, key):
                raise ValueError(f"environment variable name {key!r} is not valid")
            if key.startswith(RESERVED_ENV_PREFIX):
                raise ValueError(f"environment variable {key!r}: the {RESERVED_ENV_PREFIX} prefix is jobline's")
            if SECRET_NAME.search(key):
                raise ValueError(f"environment variable {key!r} looks like a secret: use job definition secrets")
        return env

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, params: dict[str, Parameter]) -> dict[str, Parameter]:
        for name, param in params.items():
            if not re.match(PARAMETER_NAME_PATTERN, name):
                raise ValueError(f"parameter name {name!r} must match {PARAMETER_NAME_PATTERN}")
            if SECRET_NAME.search(name):
                raise ValueError(f"parameter {name!r} looks like a secret: secrets never travel as arguments")
            if param.default is not None and len(param.default) > param.max_length:
                raise ValueError(f"parameter {name!r}: default is longer than max_length")
        return params

    @model_validator(mode="after")
    def _triggers_fit_parameters(self) -> Job:
        names = [s.name for s in self.triggers.schedule]
        if len(names) != len(set(names)):
            raise ValueError("triggers.schedule: schedule names must be unique within a job")
        supplied_by: list[tuple[str, set[str]]] = [
            *((f"triggers.schedule[{s.name}]", set(s.arguments)) for s in self.triggers.schedule),
            *((f"triggers.bus[{i}]", set(b.arguments)) for i, b in enumerate(self.triggers.bus)),
            *((f"triggers.s3[{i}]", set()) for i in range(len(self.triggers.s3))),
            # Without a mapping the item's fields are the arguments: only each item can tell.
            *(
                (f"triggers.manifest[{i}]", set(m.arguments))
                for i, m in enumerate(self.triggers.manifest)
                if m.arguments
            ),
        ]
        required = {n for n, p in self.parameters.items() if p.required and p.default is None}
        for where, supplied in supplied_by:
            if undeclared := supplied - set(self.parameters):
                raise ValueError(f"{where}: arguments {sorted(undeclared)} are not declared parameters")
            if missing := required - supplied:
                raise ValueError(f"{where}: cannot supply required parameters {sorted(missing)}")
        return self


class Catalog(CatalogModel):
    jobs: list[Job]

    @model_validator(mode="after")
    def _unique_names(self) -> Catalog:
        seen: set[str] = set()
        for job in self.jobs:
            if job.name in seen:
                raise ValueError(f"job name {job.name!r} is declared twice")
            seen.add(job.name)
        return self

    def get(self, name: str) -> Job:
        for job in self.jobs:
            if job.name == name:
                return job
        raise UnknownJobError(f"unknown job {name!r}: the catalog declares {sorted(j.name for j in self.jobs)}")


def _describe(error: dict[str, Any], raw: Any) -> CatalogProblem:
    loc = list(error["loc"])
    job = None
    if len(loc) >= 2 and loc[0] == "jobs" and isinstance(loc[1], int):
        try:
            job = str(raw["jobs"][loc[1]].get("name", f"#{loc[1]}"))
        except (KeyError, IndexError, TypeError, AttributeError):
            job = f"#{loc[1]}"
        loc = loc[2:]
    # The discriminated union adds the backend's tag (backend.batch.vcpu); it says nothing to the reader.
    if len(loc) >= 2 and loc[0] == "backend" and loc[1] in BACKENDS:
        del loc[1]
    field = ".".join(str(part) for part in loc) or "(root)"
    # pydantic prefixes the message of a ValueError raised by a validator; the rule is the message.
    return CatalogProblem(error["msg"].removeprefix("Value error, "), job, field)


def parse_catalog(raw: Any) -> Catalog:
    try:
        return Catalog.model_validate(raw)
    except ValidationError as exc:
        raise CatalogError(*(_describe(e, raw) for e in exc.errors())) from None


def load_catalog(path: Path) -> Catalog:
    import yaml  # here: a handler's import never reads the catalog (docs/PERFORMANCE.md)

    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc}") from None
    return parse_catalog(raw)


@lru_cache(maxsize=4)
def cached_catalog(path: Path) -> Catalog:
    """The catalog is bundled with the code, so one parse per cold start is enough."""
    return load_catalog(path)
