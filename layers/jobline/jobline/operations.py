"""What operators do with jobs and runs: the functions behind both the `jobline` CLI and the HTTP API.

Manual runs and retries go through RunStarter like every trigger, so they get the same identity
rule: a client token names one run, and a repeated request (same token) finds it again.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from jobline import run_view, runs_query
from jobline.backends import BACKENDS
from jobline.catalog import Catalog, cached_catalog
from jobline.clock import now_iso
from jobline.deps import Deps
from jobline.errors import UnknownJobError
from jobline.operator_errors import AlreadyFinished, Conflict, InvalidRequest, JobNotFound, NotFound, RunNotFound
from jobline.runs import resolve_arguments, run_data_of, run_execution_arn
from jobline.status import TERMINAL, Reason, RunStatus, end_write, stop
from jobline.triggers import RunRequest, Trigger

if TYPE_CHECKING:
    from jobline.settings import Settings

MAX_STOP_IDS = 25
CLIENT_TOKEN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
RUN_ID = re.compile(r"^[a-z][a-z0-9-]{0,39}-[0-9a-f]{20}$")
STOP_REASON = "Stopped by user (jobline runs stop)"


class Operations:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._settings = deps.settings
        self._catalog = deps.catalog
        self._table = deps.table

    @classmethod
    def build(cls, settings: Settings, catalog: Catalog, session: Any) -> Operations:
        return cls(Deps.build(settings, catalog, session))

    # ------------------------------------------------------------ the catalog
    def list_jobs(self) -> list[dict[str, Any]]:
        return [
            {
                "name": job.name,
                "description": job.description,
                "backend": job.backend.type,
                "parameters": sorted(job.parameters),
                "triggers": [kind for kind, declared in job.triggers if declared],
                "max_concurrent_runs": job.max_concurrent_runs,
            }
            for job in self._catalog.jobs
        ]

    def show_job(self, name: str) -> dict[str, Any]:
        try:
            return self._catalog.get(name).model_dump(mode="json")
        except UnknownJobError as error:
            raise JobNotFound(str(error)) from None

    # ------------------------------------------------------------ runs
    def start_run(
        self,
        job_name: str,
        parameters: dict[str, str],
        client_token: str | None = None,
        requested_by: str | None = None,
    ) -> dict[str, Any]:
        """A manual run. The same client token names the same run: a repeated request (same
        parameters) gets it back; other parameters with a used token are a conflict."""
        job = self._catalog.get(job_name)
        token = _client_token(client_token)
        trigger = Trigger(
            type="manual",
            key=f"manual:{token}",
            source=f"manual by {requested_by}" if requested_by else "manual",
            event={"job": job.name, "parameters": parameters, "client_token": token},
        )
        request = RunRequest(job=job, trigger=trigger, arguments=parameters)
        existing = self._table.get_run_data(request.run_id)
        if existing is not None and existing["arguments"] != resolve_arguments(job, parameters):
            raise Conflict(f"client token {token!r} already started run {request.run_id} with other parameters")
        started = self._deps.starter.start(request)
        return {"run_id": started.run_id, "job": started.job, "created": started.created, "client_token": token}

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run's row and its data, read together (one BatchGetItem)."""
        row, data = self._table.get_run_and_data(run_id) if RUN_ID.match(run_id) else (None, None)
        if row is None:
            raise RunNotFound(run_id)
        region = self._deps.session.region_name
        arn = run_execution_arn(self._settings, self._catalog, row)
        return run_view.detail(row, run_data_of(row, data), region, self._settings.job_log_group_name, arn)

    def list_runs(
        self,
        job: str | None = None,
        status: str | None = None,
        since: str | None = None,
        max_results: int | str | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        """Newest first, from the index that serves the filters (never a scan)."""
        if job:
            self._catalog.get(job)
        query = runs_query.plan(job, status, since, max_results, next_token, datetime.now(UTC))
        rows, next_key = self._table.query_runs(
            query.index,
            query.partition,
            limit=query.max_results,
            since=query.since,
            status=query.status_filter,
            start_key=query.start_key,
        )
        return {
            "runs": [run_view.summary(row) for row in rows],
            "next_token": runs_query.encode_token(next_key) if next_key else None,
        }

    def stop_runs(self, run_ids: list[str]) -> dict[str, Any]:
        """Glue BatchStopJobRun semantics: 1 to 25 ids; each id is stopped or has its own error."""
        if not 1 <= len(run_ids) <= MAX_STOP_IDS:
            raise InvalidRequest(f"stop takes 1 to {MAX_STOP_IDS} run ids per call, got {len(run_ids)}")
        stopped, errors = [], []
        for run_id in dict.fromkeys(run_ids):
            try:
                stopped.append(self._stop(run_id))
            except (NotFound, Conflict) as error:
                errors.append({"run_id": run_id, "code": error.code, "message": str(error)})
            except ClientError as error:
                details = error.response["Error"]
                errors.append({"run_id": run_id, "code": details["Code"], "message": details.get("Message", "")})
        return {"stopped": stopped, "errors": errors}

    def retry_run(self, run_id: str, client_token: str | None = None) -> dict[str, Any]:
        """A new run of a finished run's job with its arguments and trigger event; its data names
        the previous run in `retry_of`."""
        previous = self._row(run_id)
        if RunStatus(previous["status"]) not in TERMINAL:
            raise Conflict(f"run {run_id} is {previous['status']}: retry a finished run (stop this one first)")
        token = _client_token(client_token)
        trigger = Trigger(
            type="retry",
            key=f"retry:{run_id}:{token}",
            source=f"retry of {run_id}",
            event=self._trigger_event(data := run_data_of(previous, self._table.get_run_data(run_id))),
        )
        job = self._catalog.get(previous["job"])
        request = RunRequest(job=job, trigger=trigger, arguments=data["arguments"])
        started = self._deps.starter.start(request, retry_of=run_id)
        return {"run_id": started.run_id, "job": job.name, "created": started.created, "retry_of": run_id}

    # ------------------------------------------------------------ helpers
    def _row(self, run_id: str) -> dict[str, Any]:
        row = self._table.get_run(run_id) if RUN_ID.match(run_id) else None
        if row is None:
            raise RunNotFound(run_id)
        return row

    def _stop(self, run_id: str) -> dict[str, Any]:
        row = self._row(run_id)
        if RunStatus(row["status"]) in TERMINAL:
            raise AlreadyFinished(f"already {row['status']}")
        self._stop_execution(row)
        at = now_iso()
        # One conditional write; the run table's stream releases its slot (jobline.slots), as for
        # every run that ends.
        ended, before = self._table.write_run(run_id, end_write(RunStatus.STOPPED, Reason.STOPPED_BY_USER.value, at))
        if before is None:
            raise RunNotFound(run_id)
        if not ended:
            raise AlreadyFinished(f"already {before['status']}")
        after = stop(before, at) | {"updated_at": at}
        return {**run_view.summary(after), **self._terminate_attempt(after)}

    def _stop_execution(self, row: dict[str, Any]) -> None:
        arn = run_execution_arn(self._settings, self._catalog, row)
        if arn is None:  # its job left the catalog: no machine of this stack runs it
            return
        try:
            self._deps.client("stepfunctions").stop_execution(executionArn=arn, error="Stopped", cause=STOP_REASON)
        except ClientError as error:
            # A row whose execution never started (the trigger will redeliver): nothing to stop.
            if error.response["Error"]["Code"] != "ExecutionDoesNotExist":
                raise

    def _terminate_attempt(self, row: dict[str, Any]) -> dict[str, Any]:
        attempt = int(row.get("attempt") or 0)
        record = (row.get("attempts") or {}).get(str(attempt), {})
        backend = BACKENDS.get(row.get("backend", ""))
        if not (attempt and backend):
            return {}
        try:
            # Stopping the execution stops no backend job: each backend stops its attempt's.
            job_id = backend.stop(row, attempt, record, STOP_REASON, self._deps)
        except ClientError as error:
            job = record.get("backend_job_id") or f"of attempt {attempt}"
            return {"warning": f"stopped, but terminating backend job {job} failed: {error}"}
        return {"terminated_backend_job": job_id} if job_id else {}

    def _trigger_event(self, data: dict[str, Any]) -> dict[str, Any]:
        if "event" in data:
            return json.loads(data["event"])
        uri = data["event_s3_uri"]
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        try:
            body = self._deps.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            raise Conflict(f"the trigger event of run {data['run_id']} ({uri}) cannot be read: {error}") from None
        return json.loads(body)


def _client_token(token: str | None) -> str:
    if token is None:
        return uuid.uuid4().hex
    if not CLIENT_TOKEN.match(token):
        raise InvalidRequest("client_token must be 1 to 128 letters, digits, '.', '_', ':' or '-'")
    return token


@lru_cache(maxsize=1)
def get_operations() -> Operations:
    from jobline.settings import get_settings  # on first use: pydantic-settings is a slow import

    settings = get_settings()
    return Operations(Deps.build(settings, cached_catalog(settings.catalog_path)))
