"""What operators see of a run: a summary of its row (lists, notifications) and the detail of its row
and data with console links."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from jobline.backends import BACKENDS
from jobline.clock import parse_iso_z
from jobline.status import ATTEMPT_FIELDS

CONSOLE = "https://{region}.console.aws.amazon.com"
ATTEMPT_VIEW = ("status", "reason", "backend_status", *ATTEMPT_FIELDS)


def execution_of(machine_arn: str, run_id: str) -> str:
    """The ARN of the run's execution (named after the run) on the state machine `machine_arn`."""
    return f"{machine_arn.replace(':stateMachine:', ':execution:', 1)}:{run_id}"


def execution_arn(row: dict[str, Any], state_machine_prefix: str) -> str | None:
    """The run's execution: on the machine of the retry policy its row names (`policy`; a row
    written before that holds the whole ARN in `execution_arn`). None for a row that has neither."""
    if arn := row.get("execution_arn"):
        return str(arn)
    if policy := row.get("policy"):
        return execution_of(f"{state_machine_prefix}{policy}", row["run_id"])
    return None


def summary(row: dict[str, Any]) -> dict[str, Any]:
    trigger = row.get("trigger") or {}
    view = {
        "run_id": row["run_id"],
        "job": row["job"],
        "status": row["status"],
        "reason": row.get("reason"),
        "attempt": int(row.get("attempt") or 0),
        "max_attempts": int(row.get("max_attempts") or 0),
        "created_at": row.get("created_at"),
        "ended_at": row.get("ended_at"),
        "duration_seconds": duration_seconds(row),
        "trigger_type": trigger.get("type"),
        "trigger_source": trigger.get("source"),
    }
    if row.get("retry_of"):
        view["retry_of"] = row["retry_of"]
    elif trigger.get("type") == "retry" and "key" in trigger:  # a row from before `retry_of`: its key
        view["retry_of"] = trigger["key"].split(":")[1]  # is `retry:<run id>:<client token>` (Operations.retry_run)
    return view


def detail(
    row: dict[str, Any], data: dict[str, Any], region: str, log_group: str, execution_arn: str | None
) -> dict[str, Any]:
    """Everything about a run (its row and its data, where its trigger's key is), with links to its
    execution and each attempt's backend job and log."""
    trigger = {**({"key": data["trigger_key"]} if "trigger_key" in data else {}), **(row.get("trigger") or {})}
    return {
        **summary(row),
        **({"retry_of": data["retry_of"]} if data.get("retry_of") else {}),
        "backend": row.get("backend"),
        "backend_status": row.get("backend_status"),
        "started_at": started_at(row),
        "updated_at": row.get("updated_at"),
        "arguments": data.get("arguments") or {},
        "trigger": {
            **{k: trigger[k] for k in ("type", "source", "key") if k in trigger},
            **({"event_s3_uri": data["event_s3_uri"]} if "event_s3_uri" in data else {}),
            **({"event": json.loads(data["event"])} if "event" in data else {}),
        },
        "execution_arn": execution_arn,
        "attempts": [
            _attempt(number, record, row.get("backend"), region, log_group)
            for number, record in sorted((row.get("attempts") or {}).items(), key=lambda item: int(item[0]))
        ],
        "links": {"execution": _execution_url(execution_arn, region)} if execution_arn else {},
    }


def started_at(row: dict[str, Any]) -> str | None:
    """When the run's earliest attempt started (a row from before attempts alone held it: its own)."""
    starts = [r["started_at"] for r in (row.get("attempts") or {}).values() if r.get("started_at")]
    return min(starts, default=row.get("started_at"))


def duration_seconds(row: dict[str, Any]) -> float | None:
    """From creation (queueing and waiting for a slot included) to the end."""
    start, end = row.get("created_at"), row.get("ended_at")
    if not (start and end):
        return None
    return round((parse_iso_z(end) - parse_iso_z(start)).total_seconds(), 3)


def _attempt(number: str, record: dict[str, Any], backend: str | None, region: str, log_group: str) -> dict[str, Any]:
    links = {}
    path = BACKENDS[backend].job_console_path if backend in BACKENDS else None
    if path and (job_id := record.get("backend_job_id")):
        links["backend_job"] = CONSOLE.format(region=region) + path.format(region=region, job_id=job_id)
    if log_group and record.get("log_stream"):
        links["log"] = _log_url(region, log_group, record["log_stream"])
    return {"attempt": int(number), **{k: record.get(k) for k in ATTEMPT_VIEW}, "links": links}


def _execution_url(execution_arn: str, region: str) -> str:
    return f"{CONSOLE.format(region=region)}/states/home?region={region}#/v2/executions/details/{execution_arn}"


def _log_url(region: str, group: str, stream: str) -> str:
    # The CloudWatch console wants each path part URL-encoded twice, with "$" for "%".
    def encode(text: str) -> str:
        return quote(quote(text, safe=""), safe="").replace("%", "$")

    return (
        f"{CONSOLE.format(region=region)}/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{encode(group)}/log-events/{encode(stream)}"
    )
