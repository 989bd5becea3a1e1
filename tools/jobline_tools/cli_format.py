"""Readable text for the `jobline` CLI: tables and key/value blocks (`--json` prints the data instead)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MAX_CELL = 60


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def when(timestamp: str | None) -> str:
    """2026-11-20T08:00:01.250Z -> 2026-11-20 08:00:01"""
    return timestamp[:19].replace("T", " ") if timestamp else "-"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def count(number: int, noun: str) -> str:
    """1 job, 2 jobs"""
    return f"{number} {noun}" + ("" if number == 1 else "s")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """`columns` are (heading, key); a key's values are shown through `cell`."""
    cells = [[heading for heading, _ in columns], *([cell(row.get(key)) for _, key in columns] for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ("  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)) for line in cells)
    return "\n".join(line.rstrip() for line in lines)


def key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    width = max(len(key) for key, _ in pairs)
    return "\n".join(f"{key.ljust(width)}  {value if isinstance(value, str) else cell(value)}" for key, value in pairs)


def jobs(items: list[dict[str, Any]]) -> str:
    columns = [("NAME", "name"), ("BACKEND", "backend"), ("TRIGGERS", "triggers"), ("PARAMETERS", "parameters")]
    return table(items, [*columns, ("DESCRIPTION", "description")])


def job(spec: dict[str, Any]) -> str:
    backend = spec["backend"]
    parameters = [{"name": name, **param} for name, param in spec["parameters"].items()]
    retry = spec["retry"]
    lines = key_values(
        [
            ("name", spec["name"]),
            ("description", spec["description"]),
            ("backend", ", ".join(f"{k}={_flat(v)}" for k, v in backend.items() if v not in (None, [], {}))),
            ("timeout", f"{spec['timeout_seconds']} s per attempt"),
            ("retry", f"{retry['attempts']} attempts, {retry['interval_seconds']} s x{retry['backoff_rate']:g}"),
            ("concurrency", _concurrency(spec["max_concurrent_runs"])),
            ("triggers", [kind for kind, declared in spec["triggers"].items() if declared]),
        ]
    )
    if not parameters:
        return lines + "\n\nparameters: none"
    columns = [("PARAMETER", "name"), ("REQUIRED", "required"), ("DEFAULT", "default"), ("DESCRIPTION", "description")]
    return f"{lines}\n\n{table(parameters, columns)}"


def _concurrency(limit: int | None) -> str:
    return "no limit" if limit is None else f"at most {limit} runs at once"


def _flat(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def runs(items: list[dict[str, Any]]) -> str:
    rows = [
        {
            **run,
            "created": when(run["created_at"]),
            "took": duration(run["duration_seconds"]),
            "tries": f"{run['attempt']}/{run['max_attempts']}",
        }
        for run in items
    ]
    columns = [("RUN ID", "run_id"), ("STATUS", "status"), ("CREATED", "created"), ("TOOK", "took")]
    return table(rows, [*columns, ("ATTEMPT", "tries"), ("TRIGGER", "trigger_type"), ("REASON", "reason")])


def run(view: dict[str, Any]) -> str:
    trigger = view["trigger"]
    pairs: list[tuple[str, Any]] = [
        ("run", view["run_id"]),
        ("job", f"{view['job']} ({view['backend']})"),
        ("status", f"{view['status']}: {view['reason']}"),
        ("attempt", f"{view['attempt']} of {view['max_attempts']}"),
        ("created", when(view["created_at"])),
        ("started", when(view["started_at"])),
        ("ended", when(view["ended_at"])),
        ("took", duration(view["duration_seconds"])),
        ("trigger", f"{trigger.get('type')}: {trigger.get('source')}"),
        ("arguments", ", ".join(f"{k}={v}" for k, v in view["arguments"].items()) or "-"),
        ("execution", view["execution_arn"] or "-"),
    ]
    if view.get("retry_of"):
        pairs.append(("retry of", view["retry_of"]))
    pairs += [(f"{name} link", url) for name, url in view["links"].items()]
    text = key_values(pairs)
    if view["attempts"]:
        columns = [("ATTEMPT", "attempt"), ("STATUS", "status"), ("BACKEND JOB", "backend_job_id")]
        columns += [("EXIT", "exit_code"), ("REASON", "reason"), ("LOG STREAM", "log_stream")]
        text += "\n\n" + table(view["attempts"], columns)
        for attempt in view["attempts"]:
            text += "".join(f"\n  attempt {attempt['attempt']} {k}: {v}" for k, v in attempt["links"].items())
    return text


def progress(view: dict[str, Any], clock: str) -> str:
    attempt = f"attempt {view['attempt']}/{view['max_attempts']}" if view["attempt"] else "no attempt yet"
    return f"{clock}  {view['run_id']}  {view['status']:<9} {attempt}  {view['reason']}"


def _ended(view: dict[str, Any]) -> str:
    return ", ".join(f"{status} {n}" for status, n in view["ended"].items()) or "-"


def fanouts(items: list[dict[str, Any]]) -> str:
    rows = [{**f, "created_when": when(f["created_at"]), "ended_runs": _ended(f)} for f in items]
    columns = [("FAN-OUT ID", "fanout_id"), ("JOB", "job"), ("STATE", "state"), ("CREATED", "created_when")]
    columns += [("ITEMS", "item_count"), ("REJECTED", "rejected"), ("RUNS", "created"), ("ENDED", "ended_runs")]
    return table(rows, columns)


def fanout(view: dict[str, Any]) -> str:
    return key_values(
        [
            ("fan-out", view["fanout_id"]),
            ("job", view["job"]),
            ("state", f"{view['state']}: {view['reason']}" if view.get("reason") else view["state"]),
            ("manifest", f"{view['manifest']} ({view['format']}, from {view['source']})"),
            ("created", when(view["created_at"])),
            ("items", f"{view['item_count']} (lines read: {view['lines_read']}, queued: {view['queued']})"),
            ("rejected", f"{view['rejected']} (each in the event DLQ with its line and reason)"),
            ("runs", f"{view['created']} created, {view['running']} not ended"),
            ("ended", _ended(view)),
        ]
    )
