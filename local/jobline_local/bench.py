"""`make bench`: what a run costs and how fast the local stack drains a burst, before and after,
measured side by side in one run (docs/PERFORMANCE.md).

For each tree (a baseline git ref, default main's `1a45f89`, and the working tree) it starts that
tree's local stack through the meter (jobline_local/meter.py) and:
1. runs each cost scenario a few times (first-attempt success without and with a concurrency
   limit, fail once then succeed, fail all 3), one scenario at a time, the stack idle between them,
   and reports per run: billed state transitions (from each execution's history), Lambda
   invocations by function, DynamoDB write units (of which indexes) and read units, conditional
   writes that failed, SQS requests, custom events; then the modelled cost per 1M runs
   (jobline_local/bench_cost.py) next to a Stacktape-style design;
2. drops `--files N` files at once (and `--manifest N`: one manifest of N items, where the tree's
   catalog has manifest triggers) and reports runs created, final by status, lost, submitted
   twice, failed by throttling, the highest submit rate in a one-second window against the quota,
   the time to drain and runs/s.
Not a test: nothing here asserts a time."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from jobline_local import bench_report
from jobline_local.bench_cost import billed_transitions, cost_per_million, stacktape_style
from jobline_local.bench_trees import ROOT, Tree, baseline_tree, working_tree
from jobline_local.client import LocalStack
from jobline_local.meter import METER_PATH
from jobline_local.runs import is_final

DEFAULT_BASELINE = "1a45f89"  # main before the reshaped run (issues 11 and 12): the "before" of this round
# Calls the local stand-ins make only to emulate AWS (reading schedules, shipping job logs).
EMULATION_SERVICES = ("scheduler:", "logs:")
THROTTLING_MARKS = ("TooManyRequests", "Throttl", "Rate exceeded", "SubmitFailed")
BACKEND = "backend: {type: batch, capacity: on_demand, vcpu: 0.25, memory_mib: 512}"
RETRY_3 = "retry: {attempts: 3, interval_seconds: 1, backoff_rate: 1}"


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    job: str
    attempts: int  # attempts a run of it makes
    status: str  # how its runs end
    extra: str  # catalog lines of the job
    command: str
    targets: dict[str, str] = field(default_factory=dict)  # issue 11's, by row of the report


def _targets(transitions: int, cost: str = "") -> dict[str, str]:
    first = {"dynamodb_wcu": "≤ 20", "dynamodb_rcu": "≤ 2", "failed_conditional": "0"} if cost else {}
    return {"transitions": f"≤ {transitions}", **first, **({"cost": f"≤ {cost}"} if cost else {})}


SCENARIOS = (
    Scenario(
        "success",
        "first-attempt success, no concurrency limit",
        "bench-noop",
        1,
        "SUCCEEDED",
        "",
        '["true"]',
        _targets(2, "$70"),
    ),
    Scenario(
        "success_limit",
        "first-attempt success, concurrency limit (a free slot)",
        "bench-limited",
        1,
        "SUCCEEDED",
        "max_concurrent_runs: 1000",
        '["true"]',
        _targets(4, "$120"),
    ),
    Scenario(
        "fail_once",
        "fail once, then succeed",
        "bench-flaky",
        2,
        "SUCCEEDED",
        RETRY_3,
        '["sh", "-c", "test \\"$JOBLINE_ATTEMPT\\" -gt 1"]',
        _targets(2 + 2),  # "each further attempt at most 2 more"
    ),
    Scenario("fail_all", "fail all 3 attempts", "bench-fails", 3, "FAILED", RETRY_3, '["false"]', _targets(2 + 2 * 2)),
)
BURST_JOB, MANIFEST_JOB = "bench-burst", "bench-manifest"
PROGRESS_ATTRIBUTES = ("run_id", "job", "status", "updated_at")  # what wait_final reads of each row


def catalog_text(needs_limit: bool, manifest: bool) -> str:
    """The bench catalog. A tree whose every job has a concurrency limit (no limit-free path) gets
    1000 for the jobs meant to have none, as the bench always used."""
    unlimited = "max_concurrent_runs: 1000" if needs_limit else ""
    jobs = [(s.job, s.extra or unlimited, f"s3: [{{prefix: bench/{s.job}/}}]", s.command) for s in SCENARIOS]
    jobs.append((BURST_JOB, unlimited, f"s3: [{{prefix: bench/{BURST_JOB}/}}]", '["true"]'))
    if manifest:
        jobs.append((MANIFEST_JOB, unlimited, "manifest: [{prefix: bench/manifests/, format: csv}]", '["true"]'))
    lines = ["jobs:"]
    for name, extra, trigger, command in jobs:
        lines += [f"  - name: {name}", "    description: A bench job; it does nothing but exit.", f"    {BACKEND}"]
        lines += ["    timeout_seconds: 60", "    parameters: {item: {description: manifest item, default: ''}}"]
        lines += [f"    {extra}"] if extra else []
        lines += [f"    triggers: {{{trigger}}}", f"    local_command: {command}"]
    return "\n".join(lines) + "\n"


def tree_features(tree: Tree) -> dict[str, bool]:
    code = (
        "import json; from jobline.catalog import Job, Triggers; "
        "print(json.dumps({'needs_limit': Job.model_fields['max_concurrent_runs'].default is not None, "
        "'manifest': 'manifest' in Triggers.model_fields}))"
    )
    return json.loads(tree.run_python(code))


# ------------------------------------------------------------------ reading the stack
def machine() -> str:
    cpu = "unknown cpu"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return f"{os.cpu_count()} cores ({cpu}), {system}"


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def max_rate(times: list[float], window: float = 1.0) -> int:
    """The most events in any `window` seconds."""
    ordered, best, first = sorted(times), 0, 0
    for last, t in enumerate(ordered):
        while ordered[first] <= t - window:
            first += 1
        best = max(best, last - first + 1)
    return best


# A burst ends short of its count once every row has been final this long, with the stack idle and
# no message in any queue but the dead-letter queues (longer than the reconciler's 5-minute period).
IDLE_END_SECONDS = 600.0
COUNTS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed")


def messages_waiting(stack: LocalStack) -> int:
    """Messages in the stack's queues, visible, in flight or delayed, dead-letter queues aside: a
    trigger handed back or redelivered later is one."""
    sqs = stack.client("sqs")
    waiting = 0
    for url in sqs.list_queues().get("QueueUrls", []):
        if "DeadLetter" not in url:
            counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(COUNTS))["Attributes"]
            waiting += sum(int(counts[name]) for name in COUNTS)
    return waiting


def settled(stack: LocalStack) -> Any:
    """True once nothing is running or queued, twice in a row."""
    quiet = [0]

    def check() -> bool:
        status = stack.status()
        idle = status["lambda_idle"] and not status["batch_active"] and not status["sqs_in_flight"]
        idle = idle and not status.get("backend_jobs_active")
        quiet[0] = quiet[0] + 1 if idle else 0
        return quiet[0] >= 2

    return check


def point(stack: LocalStack) -> dict[str, Any]:
    """The meter's counts and the stand-ins' counters, now."""
    metered = requests.get(stack.endpoint + METER_PATH, timeout=30).json()
    return {**metered, "counters": stack.status()["counters"]}


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def wait_final(stack: LocalStack, job: str, count: int, timeout: float, started: float) -> dict[str, float]:
    """Run id -> time of the write that made its row final, once `count` runs of `job` are final, or
    once every row there is has been final for IDLE_END_SECONDS with the stack idle (runs lost: no
    row will come for them, and the figures say how many)."""
    deadline, became_final, shown = time.monotonic() + timeout, {}, 0.0
    idle, idle_since = settled(stack), None
    while time.monotonic() < deadline:
        scan = time.monotonic()
        rows = [r for r in stack.runs(PROGRESS_ATTRIBUTES) if r.get("job") == job]
        scan = time.monotonic() - scan
        for r in rows:
            if is_final(r) and r["run_id"] not in became_final:
                became_final[r["run_id"]] = _time(r["updated_at"])
        if len(became_final) >= count:
            return became_final
        if len(became_final) < len(rows) or not idle() or messages_waiting(stack):
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= IDLE_END_SECONDS:
            lost = count - len(became_final)
            print(f"    the stack is idle and every row final: {len(became_final)} of {count}, {lost} lost", flush=True)
            return became_final
        if time.time() - shown >= 10:
            shown = time.time()
            print(f"    {time.time() - started:6.1f} s: {len(rows)} runs, {len(became_final)} final", flush=True)
        # The bench's own scans (strongly consistent, the few attributes it needs) take at most a twentieth of
        # the stack's time: the drain is timed by the rows' own `updated_at`, not by when a scan sees them.
        time.sleep(max(1.0, 19 * scan))
    print(f"    timed out after {timeout} s: {len(became_final)} of {count} final", flush=True)
    return became_final


def execution_arns(stack: LocalStack) -> dict[str, str]:
    sfn = stack.client("stepfunctions")
    arns: dict[str, str] = {}
    for machine_page in sfn.get_paginator("list_state_machines").paginate():
        for state_machine in machine_page["stateMachines"]:
            pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine["stateMachineArn"])
            arns.update({e["name"]: e["executionArn"] for page in pages for e in page["executions"]})
    return arns


def history_of(stack: LocalStack, arn: str) -> list[dict[str, Any]]:
    pages = stack.client("stepfunctions").get_paginator("get_execution_history").paginate(executionArn=arn)
    return [event for page in pages for event in page["events"]]


def drop(stack: LocalStack, prefix: str, count: int, threads: int = 8) -> dict[str, float]:
    """Put `count` small files under `prefix`; their S3 URIs -> when each was put."""
    bucket, s3 = stack.output("InputBucketName"), stack.client("s3")
    dropped: dict[str, float] = {}

    def put(i: int) -> None:
        key = f"{prefix}file-{i:05d}.csv"
        dropped[f"s3://{bucket}/{key}"] = time.time()
        s3.put_object(Bucket=bucket, Key=key, Body=f"row,{i}\n".encode())

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, range(count)))
    return dropped


# ------------------------------------------------------------------ measuring
def usage(before: dict[str, Any], after: dict[str, Any], runs: int) -> dict[str, Any]:
    """Per run, what the meter and the counters saw between two points."""
    n = max(runs, 1)
    calls = _delta(after["calls"], before["calls"])
    dynamodb = _delta(after["dynamodb"], before["dynamodb"])
    counters = _delta(after["counters"], before["counters"])
    lambdas = {k.rsplit(".", 1)[-1]: v / n for k, v in counters.items() if k.startswith("lambda.invocations.")}
    sqs = sum(v for k, v in calls.items() if k.startswith("sqs:"))
    empty = after["sqs_empty_receives"] - before["sqs_empty_receives"]
    per_run = {
        "lambda_invocations": sum(lambdas.values()),
        "dynamodb_wcu": dynamodb.get("wcu", 0) / n,
        "dynamodb_index_wcu": dynamodb.get("index_wcu", 0) / n,
        "dynamodb_rcu": dynamodb.get("rcu", 0) / n,
        "dynamodb_strong_reads_rcu": dynamodb.get("strong_rcu", 0) / n,
        "dynamodb_eventual_reads_rcu": dynamodb.get("eventual_rcu", 0) / n,
        "dynamodb_failed_conditional_writes": dynamodb.get("failed_conditional", 0) / n,
        "sqs_requests_all": sqs / n,
        "sqs_requests": (sqs - empty) / n,
        "custom_events": (after["custom_events"] - before["custom_events"]) / n,
    }
    api = {k: v / n for k, v in sorted(calls.items(), key=lambda kv: -kv[1]) if not k.startswith(EMULATION_SERVICES)}
    return {
        **per_run,
        "dynamodb_by_kind": by_kind(before.get("dynamodb_by_kind", {}), after.get("dynamodb_by_kind", {}), n),
        "lambda_by_function": dict(sorted(lambdas.items())),
        "api_calls": api,
    }


def by_kind(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], runs: int) -> dict[str, Any]:
    """Per run, the DynamoDB writes between two points by item kind and operation ("RUN:UpdateItem"),
    the most write units first."""
    kinds = {kind: _delta(amounts, before.get(kind, {})) for kind, amounts in after.items()}
    per_run = {kind: {k: v / runs for k, v in amounts.items()} for kind, amounts in kinds.items() if amounts}
    return dict(sorted(per_run.items(), key=lambda kv: (-kv[1].get("wcu", 0), kv[0])))


def run_scenario(stack: LocalStack, scenario: Scenario, runs: int, timeout: float) -> dict[str, Any]:
    print(f"  scenario {scenario.key}: {runs} runs of {scenario.job} (after one warm-up run)", flush=True)
    # A job's first run ever makes what later runs find (its slot item): one run first, not counted,
    # so the figures are a steady state's.
    drop(stack, f"bench/{scenario.job}/warm-up-", 1, threads=1)
    wait_final(stack, scenario.job, 1, timeout, time.time())
    stack.wait_for(settled(stack), 600, interval=1, what="the stack to settle")
    warm = {r["run_id"] for r in stack.runs() if r.get("job") == scenario.job}
    started = time.time()
    before = point(stack)
    drop(stack, f"bench/{scenario.job}/", runs, threads=1)
    ended = wait_final(stack, scenario.job, runs + len(warm), timeout, started)
    became_final = {run_id: at for run_id, at in ended.items() if run_id not in warm}
    stack.wait_for(settled(stack), 600, interval=1, what="the stack to settle")
    after = point(stack)
    rows = [r for r in stack.runs() if r.get("job") == scenario.job and r["run_id"] not in warm]
    arns = execution_arns(stack)
    histories = [history_of(stack, r.get("execution_arn") or arns[r["run_id"]]) for r in rows]
    transitions = [billed_transitions(history) for history in histories]
    figures = usage(before, after, len(rows))
    figures["transitions"] = statistics.mean(transitions) if transitions else 0.0
    figures["state_change_invocations"] = figures["lambda_by_function"].get("StateChangeFunction", 0.0)
    figures["runs"] = len(rows)
    figures["statuses"] = dict(Counter(r["status"] for r in rows))
    figures["expected"] = {"status": scenario.status, "final": len(became_final)}
    figures["cost_per_million"] = cost_per_million(figures)
    # One run's history, to read the transitions from: state entered (name), retries.
    figures["example_history"] = (
        [f"{e['type']} {e.get('stateEnteredEventDetails', {}).get('name', '')}".strip() for e in histories[0]]
        if histories
        else []
    )
    return figures


@dataclass(frozen=True)
class Burst:
    """What a burst left: its runs' rows, when each became final, the files dropped (S3 URI ->
    time; empty for a manifest), the accepted submit calls (time, job name) and the quota."""

    rows: list[dict[str, Any]]
    became_final: dict[str, float]
    dropped: dict[str, float]
    submits: list[tuple[float, str]]
    items: int
    quota: float
    started: float

    def figures(self) -> dict[str, Any]:
        rows, ids = self.rows, {r["run_id"] for r in self.rows}
        ours = [(t, name) for t, name in self.submits if name.rsplit("-", 1)[0] in ids]  # <run_id>-<attempt>
        per_attempt = Counter(name for _, name in ours)
        last = max(self.became_final.values(), default=self.started)
        source = {r["run_id"]: r.get("trigger", {}).get("source") for r in rows}
        latencies = [t - self.dropped[source[i]] for i, t in self.became_final.items() if source.get(i) in self.dropped]
        unsucceeded = [r for r in rows if r["status"] != "SUCCEEDED"]
        return {
            "items": self.items,
            "runs_created": len(rows),
            "final_by_status": dict(Counter(r["status"] for r in rows if is_final(r))),
            "lost": (len(set(self.dropped) - set(source.values())) if self.dropped else max(0, self.items - len(rows))),
            # Runs with an attempt whose backend job was submitted more than once.
            "submitted_twice": len({name.rsplit("-", 1)[0] for name, c in per_attempt.items() if c > 1}),
            "failed_by_throttling": sum(
                1 for r in unsucceeded if any(m in json.dumps(r, default=str) for m in THROTTLING_MARKS)
            ),
            # Why the runs that did not succeed ended as they did (status: reason -> runs).
            "not_succeeded": dict(Counter(f"{r['status']}: {r.get('reason', '')}" for r in unsucceeded)),
            "max_submits_in_one_second": max_rate([t for t, _ in ours]),
            "submit_quota_per_second": self.quota,
            "drain_seconds": round(last - self.started, 1),
            "runs_per_second": round(len(self.became_final) / max(last - self.started, 1e-9), 2),
            "drop_to_final_seconds": {
                "median": round(statistics.median(latencies), 1) if latencies else None,
                "p95": round(percentile(latencies, 0.95), 1) if latencies else None,
            },
        }


def burst_figures(
    stack: LocalStack,
    job: str,
    before: dict[str, Any],
    dropped: dict[str, float],
    count: int,
    args: Any,
    started: float,
) -> dict[str, Any]:
    """Wait for `count` runs of `job`, then what the issue 12 bench asks for."""
    became_final = wait_final(stack, job, count, args.timeout, started)
    stack.wait_for(settled(stack), 600, interval=1, what="the stack to settle")
    after = point(stack)
    rows = [r for r in stack.runs() if r.get("job") == job]
    submits = [(t, name) for t, _, name in after["submits"][len(before["submits"]) :]]
    quota = float(args.submit_quota or 50)
    figures = Burst(rows, became_final, dropped, submits, count, quota, started).figures()
    figures["usage_per_run"] = usage(before, after, len(rows))
    # Empty receives of idle SQS polls left out: they grow with the drain time, not with the runs.
    empty = (after["sqs_empty_receives"] - before["sqs_empty_receives"]) / max(len(rows), 1)
    figures["api_calls_per_run"] = round(sum(figures["usage_per_run"]["api_calls"].values()) - empty, 1)
    return figures


def run_burst(stack: LocalStack, files: int, args: Any) -> dict[str, Any]:
    print(f"  burst: {files} files at once", flush=True)
    before, started = point(stack), time.time()
    dropped = drop(stack, f"bench/{BURST_JOB}/", files)
    print(f"    dropped {files} files in {time.time() - started:.1f} s", flush=True)
    return burst_figures(stack, BURST_JOB, before, dropped, files, args, started)


def run_manifest(stack: LocalStack, items: int, args: Any) -> dict[str, Any]:
    print(f"  manifest: one manifest of {items} items", flush=True)
    body = "item\n" + "".join(f"item-{i:05d}\n" for i in range(items))
    before, started = point(stack), time.time()
    stack.client("s3").put_object(
        Bucket=stack.output("InputBucketName"), Key=f"bench/manifests/m-{items}.csv", Body=body.encode()
    )
    return burst_figures(stack, MANIFEST_JOB, before, {}, items, args, started)


def cold_start() -> str:
    """The handlers' cold imports against `import boto3` (jobline_local.coldstart, the coldstart
    branch's measure of the working tree's built layer), where the tree has it."""
    if importlib.util.find_spec("jobline_local.coldstart") is None:
        return "not available on this tree (jobline_local.coldstart comes with the coldstart branch)"
    from jobline_local import coldstart  # type: ignore[attr-defined]

    try:
        return coldstart.render(coldstart.measure())
    except FileNotFoundError as error:  # the layer is not built
        return str(error)


def measure_tree(tree: Tree, args: argparse.Namespace) -> dict[str, Any]:
    features = tree_features(tree)
    state_dir = args.state_dir / tree.root.name
    state_dir.mkdir(parents=True, exist_ok=True)
    catalog = state_dir.with_name(f"bench-jobs-{tree.root.name}.yaml")
    catalog.write_text(catalog_text(features["needs_limit"], features["manifest"] and bool(args.manifest)))
    env = {f"JOBLINE_QUOTA_{op}": str(args.submit_quota) for op in ("SUBMITJOB",)} if args.submit_quota else {}
    parameters = dict(p.split("=", 1) for p in args.parameter)
    stack = tree.stack(
        catalog,
        state_dir,
        env,
        lambda_concurrency=args.lambda_concurrency,
        job_slots=args.job_slots,
        parameters=parameters,
    )
    print(f"{tree.label}: {tree.root}", flush=True)
    result: dict[str, Any] = {"tree": tree.label, "features": features, "scenarios": {}}
    stack.start()
    try:
        stack.wait_for(lambda: stack.status()["lambda_idle"], 60, what="warm functions")
        time.sleep(2)  # let the prewarmed workers finish their imports
        for scenario in SCENARIOS if args.scenario_runs else ():
            result["scenarios"][scenario.key] = run_scenario(stack, scenario, args.scenario_runs, args.timeout)
        if args.files:
            result["burst"] = run_burst(stack, args.files, args)
        if args.manifest:
            result["manifest"] = (
                run_manifest(stack, args.manifest, args)
                if features["manifest"]
                else "not available on this tree: its catalog has no manifest trigger"
            )
    finally:
        stack.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobline_local.bench", description=__doc__)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git ref measured as 'before' ('none': skip)")
    parser.add_argument(
        "--working-tree", action=argparse.BooleanOptionalAction, default=True, help="measure the working tree (after)"
    )
    parser.add_argument("--files", type=int, default=500, help="files dropped at once (0: no burst)")
    parser.add_argument("--manifest", type=int, default=0, help="items of one manifest (where the tree has them)")
    parser.add_argument("--scenario-runs", type=int, default=5, help="runs per cost scenario (0: none)")
    parser.add_argument("--submit-quota", type=float, default=0, help="local SubmitJob rate per second (0: AWS's 50)")
    parser.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE", help="stack parameter")
    parser.add_argument("--cold-start", action="store_true", help="also the handlers' cold imports (coldstart)")
    parser.add_argument("--lambda-concurrency", type=int, default=2)
    parser.add_argument("--job-slots", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the runs of a step")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".local-stack" / "bench")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    trees = ([] if args.baseline == "none" else [baseline_tree(args.baseline)]) + (
        [working_tree()] if args.working_tree else []
    )
    print(f"jobline bench on {machine()}", flush=True)
    results = [measure_tree(tree, args) for tree in trees]
    if args.cold_start and args.working_tree:
        results[-1]["cold_start"] = cold_start()
    stacktape = {s.key: cost_per_million(stacktape_style(s.attempts)) for s in SCENARIOS}
    print()
    print(bench_report.render(results, SCENARIOS, stacktape, machine()))
    if args.json:
        args.json.write_text(
            json.dumps({"machine": machine(), "trees": results, "stacktape_style": stacktape}, indent=2)
        )
    ok = all(
        r["scenarios"][s.key]["statuses"] == {s.status: args.scenario_runs}
        for r in results
        for s in SCENARIOS
        if r["scenarios"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
