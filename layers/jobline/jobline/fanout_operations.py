"""What operators do with fan-outs (CLI `jobline fanouts ...`, API `/fanouts`): start, list, get, stop.

A start stores the items (or the CLI's manifest file) as the fan-out's manifest in the run data
bucket and hands the request to the fan-out function; the client token names the fan-out, so a
repeated start finds it. A stop marks the fan-out STOPPED (its reader stops at its next
checkpoint, its workers skip the items still queued) and stops its created runs through
`Operations.stop_runs`, a page of its runs per call (by-fanout, in line order): `next_token` says
where the next call goes on. A run a worker was starting at the moment of the stop can escape the
first pass; stopping again catches it.
"""

from __future__ import annotations

import base64
import binascii
import json
from functools import lru_cache
from typing import Any

from jobline import fanouts, manifests
from jobline.catalog import cached_catalog
from jobline.clock import now_iso
from jobline.deps import Deps
from jobline.errors import NoMatchingJob
from jobline.fanout_store import FanoutStore
from jobline.manifests import Format
from jobline.operations import Operations, _client_token
from jobline.operator_errors import InvalidRequest, NotFound

STOP_PAGE = 25  # Operations.stop_runs' most ids per call
LIST_DEFAULT, LIST_MAX = 50, 200
STOP_REASON = "Stopped by user (jobline fanouts stop)"
VIEW_FIELDS = (
    "fanout_id",
    "state",
    "reason",
    "manifest",
    "source",
    "format",
    "created_at",
    "updated_at",
    "item_count",
    "lines_read",
    "queued",
    "rejected",
)


class FanoutNotFound(NotFound):
    def __init__(self, fanout_id: str) -> None:
        super().__init__(f"no fan-out {fanout_id!r} (see `jobline fanouts list`)")


class FanoutOperations:
    def __init__(self, deps: Deps, operations: Operations) -> None:
        self._deps = deps
        self._operations = operations
        self._store = FanoutStore(deps.client("dynamodb"), deps.settings.run_table_name)

    def start(
        self,
        job: str,
        *,
        items: list[Any] | None = None,
        manifest_file: bytes | None = None,
        manifest: str | None = None,
        format: Format | None = None,
        trigger: int = 0,
        client_token: str | None = None,
    ) -> dict[str, Any]:
        """Items (JSON objects), a manifest file's bytes, or an s3:// manifest: exactly one."""
        if sum(x is not None for x in (items, manifest_file, manifest)) != 1:
            raise InvalidRequest("give exactly one of items, a manifest file or an s3:// manifest")
        declared = self._deps.catalog.get(job).triggers.manifest
        if trigger >= len(declared):
            raise NoMatchingJob(f"job {job!r} declares no triggers.manifest[{trigger}]: it takes no fan-outs")
        token = _client_token(client_token)
        fid = fanouts.fanout_id(job, f"message:{token}")
        if items is not None:
            if not 1 <= len(items) <= manifests.MAX_ITEMS:
                raise InvalidRequest(f"items: 1 to {manifests.MAX_ITEMS} items")
            manifest_file, format = manifests.jsonl(items), "jsonl"
        if manifest_file is not None:
            manifest = self._store_manifest(fid, manifest_file, format or declared[trigger].format)
        body = {"job": job, "manifest": manifest, "format": format, "trigger": trigger, "idempotency_key": token}
        fanouts.request({k: v for k, v in body.items() if v is not None}, token, self._deps)
        return {"fanout_id": fid, "job": job, "manifest": manifest, "client_token": token}

    def get(self, fanout_id: str) -> dict[str, Any]:
        record = self._store.get(fanout_id) if len(fanout_id) <= 80 else None
        if record is None:
            raise FanoutNotFound(fanout_id)
        return view(record, self._store.count_runs(fanout_id))

    def list(self, max_results: int | str | None = None, next_token: str | None = None) -> dict[str, Any]:
        """Fan-outs, newest first."""
        try:
            limit = int(max_results) if max_results is not None else LIST_DEFAULT
        except ValueError:
            raise InvalidRequest(f"max_results must be a number from 1 to {LIST_MAX}") from None
        if not 1 <= limit <= LIST_MAX:
            raise InvalidRequest(f"max_results must be from 1 to {LIST_MAX}, got {limit}")
        records, last = self._store.page(limit, _decode(next_token) if next_token else None)
        shown = [view(r, self._store.count_runs(r["fanout_id"])) for r in records]
        return {"fanouts": shown, "next_token": _encode(last) if last else None}

    def stop(self, fanout_id: str, next_token: str | None = None) -> dict[str, Any]:
        """Mark the fan-out stopped, then stop a page of its runs that are still going."""
        self.get(fanout_id)
        self._store.stop(fanout_id, STOP_REASON, now_iso())
        start = _decode(next_token) if next_token else None
        ids, last = self._store.run_ids(fanout_id, STOP_PAGE, start)
        stopped, errors = [], []
        if ids:
            result = self._operations.stop_runs(ids)
            stopped = [run["run_id"] for run in result["stopped"]]
            errors = [e for e in result["errors"] if e["code"] != "AlreadyFinished"]
        return {
            **view(self._store.get(fanout_id) or {}, self._store.count_runs(fanout_id)),
            "stopped_runs": stopped,
            "errors": errors,
            "next_token": _encode(last) if last else None,
        }

    def _store_manifest(self, fid: str, body: bytes, fmt: Format) -> str:
        bucket = self._deps.settings.run_data_bucket
        return f"s3://{bucket}/{fanouts.store_manifest(self._deps.client('s3'), bucket, fid, body, fmt)}"


def view(record: dict[str, Any], created: int) -> dict[str, Any]:
    """A fan-out as operators see it: its counts (`created`: its runs, counted in by-fanout), and how
    many of its runs are still going."""
    shown = {name: record.get(name) for name in VIEW_FIELDS}
    ended = {status: int(n) for status, n in sorted((record.get("ended") or {}).items())}
    return {
        **shown,
        "job": record.get("job_name"),
        "created": created,
        "ended": ended,
        "running": created - sum(ended.values()),
    }


def _encode(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode().rstrip("=")


def _decode(token: str) -> dict[str, Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        key = None
    pk = key.get("pk") if isinstance(key, dict) else None
    pk = pk.get("S") if isinstance(pk, dict) else pk  # by-fanout pages carry DynamoDB's typed key
    if not isinstance(pk, str) or pk.split("#", 1)[0] not in ("RUN", "FANOUT"):
        raise InvalidRequest("malformed next_token: pass the next_token of the previous page unchanged")
    return key


def from_operations(operations: Operations) -> FanoutOperations:
    return FanoutOperations(operations._deps, operations)


@lru_cache(maxsize=1)
def get_fanout_operations() -> FanoutOperations:
    from jobline.settings import get_settings  # on first use: pydantic-settings is a slow import

    settings = get_settings()
    deps = Deps.build(settings, cached_catalog(settings.catalog_path))
    return FanoutOperations(deps, Operations(deps))
