"""`runs list` requests, checked once for the CLI and the API, and the index that serves each.

Glue GetJobRuns semantics: newest first, MaxResults 1 to 200, an opaque continuation token. The
token is the index key of the last run returned (base64 of JSON), so it stays valid however many
runs are created meanwhile, and it only fits the listing (job or status) that produced it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jobline.clock import iso_z
from jobline.operator_errors import InvalidRequest
from jobline.status import RunStatus

MAX_RESULTS = 200
DEFAULT_MAX_RESULTS = 100
_AGE = re.compile(r"^(\d{1,6})([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


@dataclass(frozen=True)
class RunsQuery:
    index: str
    partition: tuple[str, str]
    status_filter: str | None
    since: str | None
    max_results: int
    start_key: dict[str, str] | None


def plan(
    job: str | None,
    status: str | None,
    since: str | None,
    max_results: int | str | None,
    next_token: str | None,
    now: datetime,
) -> RunsQuery:
    """The one index that answers the request: by job (status as a filter), by status, or all runs."""
    status = parse_status(status) if status else None
    if job:
        index, partition, status_filter = "by-job-keys", ("job", job), status
    elif status:
        index, partition, status_filter = "by-status-keys", ("status", status), None
    else:
        index, partition, status_filter = "by-created-keys", ("record_type", "RUN"), None
    return RunsQuery(
        index=index,
        partition=partition,
        status_filter=status_filter,
        since=parse_since(since, now) if since else None,
        max_results=parse_max_results(max_results),
        start_key=decode_token(next_token, partition) if next_token else None,
    )


def parse_status(text: str) -> str:
    try:
        return RunStatus(text.strip().upper()).value
    except ValueError:
        raise InvalidRequest(f"unknown status {text!r}: use one of {', '.join(RunStatus)}") from None


def parse_since(text: str, now: datetime) -> str:
    """An age (90s, 30m, 6h, 7d, 2w) or an ISO 8601 date or time (UTC unless it says otherwise),
    as the run table writes times: 2026-11-20T08:00:00.000Z."""
    if age := _AGE.match(text.strip()):
        at = now - timedelta(seconds=int(age[1]) * _SECONDS[age[2]])
    else:
        try:
            at = datetime.fromisoformat(text.strip())
        except ValueError:
            raise InvalidRequest(
                f"since {text!r} is neither a time (2026-11-20, 2026-11-20T08:00:00Z) nor an age (30m, 6h, 7d)"
            ) from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
    return iso_z(at)


def parse_max_results(value: int | str | None) -> int:
    if value is None or value == "":
        return DEFAULT_MAX_RESULTS
    try:
        number = int(value)
    except ValueError:
        raise InvalidRequest(f"max_results {value!r} is not a number from 1 to {MAX_RESULTS}") from None
    if not 1 <= number <= MAX_RESULTS:
        raise InvalidRequest(f"max_results must be from 1 to {MAX_RESULTS}, got {number}")
    return number


def encode_token(key: dict[str, str]) -> str:
    text = json.dumps(key, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_token(token: str, partition: tuple[str, str]) -> dict[str, str]:
    attribute, value = partition
    malformed = InvalidRequest("malformed next_token: pass the next_token of the previous page unchanged")
    try:
        key: Any = json.loads(base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True))
    except (ValueError, binascii.Error):
        raise malformed from None
    if (
        not isinstance(key, dict)
        or len(key) != 3
        or not all(isinstance(v, str) for v in key.values())
        or not str(key.get("pk", "")).startswith("RUN#")
        or "created_at" not in key
    ):
        raise malformed
    if key.get(attribute) != value:
        raise InvalidRequest("this next_token belongs to a listing with other filters: repeat its job and status")
    return key
