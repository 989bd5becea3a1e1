"""The bench's figures as Markdown tables, one column per tree (docs/PERFORMANCE.md keeps them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Row = tuple[str, Callable[[dict[str, Any]], str]]
# The scenario rows issue 11 sets a target for (Scenario.targets' keys).
TARGET_OF = {
    "billed state transitions": "transitions",
    "DynamoDB write units (of which indexes)": "dynamodb_wcu",
    "DynamoDB read units (strong + eventual)": "dynamodb_rcu",
    "conditional writes that failed": "failed_conditional",
    "**modelled cost per 1M runs**": "cost",
}


def _n(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def _money(value: float) -> str:
    return f"${value:,.2f}"


def _cost(figures: dict[str, Any]) -> str:
    c = figures["cost_per_million"]
    return _money(c["total"])


def _breakdown(c: dict[str, float]) -> str:
    dynamodb = c["dynamodb_wcu"] + c["dynamodb_rcu"]
    return (
        f"SFN {_money(c['transitions'])}, DDB {_money(dynamodb)}, λ {_money(c['lambda_invocations'])}, "
        f"SQS {_money(c['sqs_requests'])}, events {_money(c['custom_events'])}"
    )


SCENARIO_ROWS: list[Row] = [
    ("runs (final status)", lambda f: f"{f['runs']} {f['statuses']}"),
    ("billed state transitions", lambda f: _n(f["transitions"])),
    ("StateChangeFunction invocations", lambda f: _n(f["state_change_invocations"])),
    ("Lambda invocations, all functions", lambda f: _n(f["lambda_invocations"])),
    ("DynamoDB write units (of which indexes)", lambda f: f"{_n(f['dynamodb_wcu'])} ({_n(f['dynamodb_index_wcu'])})"),
    (
        "DynamoDB read units (strong + eventual)",
        lambda f: (
            f"{_n(f['dynamodb_rcu'])} ({_n(f['dynamodb_strong_reads_rcu'])} + {_n(f['dynamodb_eventual_reads_rcu'])})"
        ),
    ),
    ("conditional writes that failed", lambda f: _n(f["dynamodb_failed_conditional_writes"])),
    ("SQS requests billed (all)", lambda f: f"{_n(f['sqs_requests'])} ({_n(f['sqs_requests_all'])})"),
    ("custom events put", lambda f: _n(f["custom_events"])),
    ("**modelled cost per 1M runs**", lambda f: f"**{_cost(f)}**"),
    ("of which", lambda f: _breakdown(f["cost_per_million"])),
]
BURST_ROWS: list[Row] = [
    ("items dropped at once", lambda f: str(f["items"])),
    ("runs created", lambda f: str(f["runs_created"])),
    ("runs final, by status", lambda f: str(f["final_by_status"])),
    ("runs lost", lambda f: str(f["lost"])),
    ("runs submitted twice", lambda f: str(f["submitted_twice"])),
    ("runs failed by throttling", lambda f: str(f["failed_by_throttling"])),
    ("runs not succeeded, by reason", lambda f: str(f.get("not_succeeded") or "none")),
    (
        "highest submits in one second (quota)",
        lambda f: f"{f['max_submits_in_one_second']} ({_n(f['submit_quota_per_second'])}/s)",
    ),
    ("time to drain (first drop to last final row)", lambda f: f"{f['drain_seconds']} s"),
    ("runs/s", lambda f: _n(f["runs_per_second"])),
    (
        "drop -> final row, median / p95",
        lambda f: f"{f['drop_to_final_seconds']['median']} s / {f['drop_to_final_seconds']['p95']} s",
    ),
    ("API calls per run (empty SQS polls left out)", lambda f: _n(f["api_calls_per_run"])),
    ("Lambda invocations per run", lambda f: _n(f["usage_per_run"]["lambda_invocations"])),
    ("DynamoDB write units per run", lambda f: _n(f["usage_per_run"]["dynamodb_wcu"])),
]


BURST_TARGETS = {
    "runs lost": "0",
    "runs submitted twice": "0",
    "runs failed by throttling": "0",
    "highest submits in one second (quota)": "≤ quota",
    "runs/s": "≥ 10 (500 files)",
}


def _kind_cell(amounts: dict[str, float] | None) -> str:
    """One kind's writes per run: how many, their WCU (of which indexes), how many failed their condition."""
    if not amounts:
        return ""
    cell = f"{_n(amounts.get('writes', 0))} writes, {_n(amounts.get('wcu', 0))} WCU ({_n(amounts.get('index_wcu', 0))})"
    failed = amounts.get("failed_conditional", 0)
    return f"{cell}, {_n(failed)} failed" if failed else cell


def kinds_table(per_tree: list[Any], trees: list[str]) -> list[str]:
    """The scenario's DynamoDB writes by item kind and operation, a column per tree ([] if none)."""
    kinds = [k for f in per_tree if isinstance(f, dict) for k in f.get("dynamodb_by_kind", {})]
    if not kinds:
        return []
    found = [f.get("dynamodb_by_kind", {}) if isinstance(f, dict) else {} for f in per_tree]
    rows = [[kind, *(_kind_cell(f.get(kind)) for f in found)] for kind in dict.fromkeys(kinds)]
    return [_table(["DynamoDB writes per run, by item kind", *trees], rows), ""]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def _cell(figures: Any, render: Callable[[dict[str, Any]], str]) -> str:
    if not isinstance(figures, dict):
        return str(figures or "-")
    try:
        return render(figures)
    except (KeyError, TypeError, ValueError):
        return "-"


def render(results: list[dict[str, Any]], scenarios: Sequence[Any], stacktape: dict[str, Any], machine: str) -> str:
    out = [f"Machine: {machine}", ""]
    trees = [r["tree"] for r in results]
    for scenario in scenarios:
        if not any(scenario.key in r["scenarios"] for r in results):
            continue
        st = {"cost_per_million": stacktape[scenario.key]}
        rows = []
        for label, render_row in SCENARIO_ROWS:
            cells = [_cell(r["scenarios"].get(scenario.key), render_row) for r in results]
            model = _cell(st, render_row) if label.startswith(("**", "of which")) else ""
            if label == "billed state transitions":
                model = str(scenario.attempts)
            if label == "Lambda invocations, all functions":
                model = "1"
            rows.append([label, *cells, model, scenario.targets.get(TARGET_OF.get(label, ""), "")])
        header = ["per run", *trees, "Stacktape-style", "issue 11 target"]
        out += [f"### {scenario.title}", "", _table(header, rows), ""]
        out += kinds_table([r["scenarios"].get(scenario.key) for r in results], trees)
    for part, title in (("burst", "Burst: files dropped at once"), ("manifest", "Burst: one manifest")):
        measured = [r for r in results if isinstance(r.get(part), dict)]
        out += [f"{title} ({r['tree']}): {r[part]}" for r in results if isinstance(r.get(part), str)]
        if measured:
            rows = [
                [label, *(_cell(r.get(part), fn) for r in results), BURST_TARGETS.get(label, "")]
                for label, fn in BURST_ROWS
            ]
            out += [f"### {title}", "", _table(["", *trees, "issues 11/12 target"], rows), ""]
    for r in results:
        if "cold_start" in r:
            out += [f"Cold start ({r['tree']}): {r['cold_start']}", ""]
    out.append(
        "Stacktape-style: a trigger function starting one `.sync` Task with its own Retry "
        "(1 transition per attempt + 1 Lambda invocation; no run table, slots or notifications)."
    )
    return "\n".join(out)
