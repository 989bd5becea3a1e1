"""`make bench`: drop N files into the local stack and measure the pipeline.

Reports end-to-end runs per second, the median and p95 time from a file's drop to its run's
final row, and the AWS API calls per run by operation (and by caller). The job itself does
nothing (`true`), so the figures are jobline's own overhead on this machine. Not a test."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from jobline_local.client import LocalStack
from jobline_local.runs import is_final

ROOT = Path(__file__).resolve().parents[2]
# Calls the local stand-ins make only to emulate AWS (reading schedules, shipping job logs): on AWS
# they happen inside the services and are nobody's API calls. Reported apart.
EMULATION_SERVICES = {"scheduler", "logs"}
BENCH_CATALOG = """\
jobs:
  - name: bench-noop
    description: Does nothing; the benchmark measures jobline around it.
    backend: {type: batch, capacity: on_demand, vcpu: 0.25, memory_mib: 512}
    timeout_seconds: 60
    max_concurrent_runs: 1000
    triggers:
      s3:
        - prefix: bench/
    local_command: ["true"]
"""


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return f"{os.cpu_count()} cores ({cpu}){memory}, {system}"


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobline_local.bench", description=__doc__)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--lambda-concurrency", type=int, default=2)
    parser.add_argument("--job-slots", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for every run to end")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".local-stack" / "bench")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    args.state_dir.mkdir(parents=True, exist_ok=True)
    catalog = args.state_dir.with_name("bench-jobs.yaml")
    catalog.write_text(BENCH_CATALOG)
    stack = LocalStack(
        catalog=catalog,
        state_dir=args.state_dir,
        lambda_concurrency=args.lambda_concurrency,
        job_slots=args.job_slots,
        user_agent_appid="jobline-bench",
    )
    print(f"jobline bench: {args.files} files on {machine()}", flush=True)
    stack.start()
    try:
        bucket = stack.output("InputBucketName")
        s3 = stack.client("s3")
        stack.wait_for(lambda: stack.status()["lambda_idle"], 60, what="warm functions")
        time.sleep(2)  # let the prewarmed workers finish their imports
        before = stack.status()["api_calls"]["by_caller"]
        dropped: dict[str, float] = {}

        def drop(i: int) -> None:
            key = f"bench/file-{i:05d}.csv"
            dropped[f"s3://{bucket}/{key}"] = time.time()
            s3.put_object(Bucket=bucket, Key=key, Body=f"row,{i}\n".encode())

        started = time.time()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(drop, range(args.files)))
        print(f"dropped {args.files} files in {time.time() - started:.1f} s; waiting for the runs...", flush=True)

        deadline = time.monotonic() + args.timeout
        rows: list[dict[str, Any]] = []
        became_final: dict[str, float] = {}  # run id -> updated_at of the write that made it final
        while time.monotonic() < deadline:
            rows = stack.runs()
            for r in rows:
                if is_final(r) and r["run_id"] not in became_final:
                    became_final[r["run_id"]] = _time(r["updated_at"])
            final = len(became_final)
            if int(time.time() - started) % 10 < 2:
                print(f"  {time.time() - started:6.1f} s: {len(rows)} runs, {final} final", flush=True)
            if len(rows) >= args.files and final >= args.files:
                break
            time.sleep(2)
        all_final = time.time()
        # State change events still queued for StateChangeFunction belong to these runs too.
        stack.wait_for(settled(stack), 600, interval=1, what="the stack to settle")
        settle_seconds = time.time() - all_final
        after = stack.status()["api_calls"]["by_caller"]
    finally:
        stack.stop()

    finals = [r for r in rows if is_final(r)]
    latencies = [
        became_final[r["run_id"]] - dropped[r["trigger"]["source"]] for r in finals if r["trigger"]["source"] in dropped
    ]
    last = max(became_final.values(), default=started)
    calls: dict[str, int] = {}
    by_caller: dict[str, int] = {}
    emulation: dict[str, int] = {}
    for key, count in after.items():
        delta = count - before.get(key, 0)
        caller, operation = key.split("|", 1)
        if caller == "benchmark client" or delta <= 0:
            continue
        if caller == "local stand-ins" and operation.split(":")[0] in EMULATION_SERVICES:
            emulation[operation] = emulation.get(operation, 0) + delta
            continue
        calls[operation] = calls.get(operation, 0) + delta
        by_caller[caller] = by_caller.get(caller, 0) + delta
    runs = max(len(finals), 1)
    figures = {
        "files": args.files,
        "runs_final": len(finals),
        "statuses": {s: sum(1 for r in finals if r["status"] == s) for s in {r["status"] for r in finals}},
        "runs_per_second": round(len(finals) / max(last - started, 1e-9), 2),
        "drop_to_final_seconds": {
            "median": round(statistics.median(latencies), 2) if latencies else None,
            "p95": round(percentile(latencies, 0.95), 2) if latencies else None,
            "max": round(max(latencies), 2) if latencies else None,
        },
        "api_calls_per_run": {op: round(n / runs, 2) for op, n in sorted(calls.items(), key=lambda kv: -kv[1])},
        "api_calls_per_run_by_caller": {c: round(n / runs, 2) for c, n in sorted(by_caller.items())},
        "emulation_calls_per_run": {op: round(n / runs, 2) for op, n in sorted(emulation.items())},
        "settle_seconds_after_last_final_row": round(settle_seconds, 1),
        "lambda_concurrency": args.lambda_concurrency,
        "job_slots": args.job_slots,
        "machine": machine(),
    }
    print()
    print(f"runs final:            {len(finals)} of {args.files} {figures['statuses']}")
    print(f"end-to-end throughput: {figures['runs_per_second']} runs/s")
    d = figures["drop_to_final_seconds"]
    print(f"drop -> final row:     median {d['median']} s, p95 {d['p95']} s, max {d['max']} s")
    print(f"API calls per run:     {sum(calls.values()) / runs:.1f} in all (counted until the stack settled,")
    print(f"                       {figures['settle_seconds_after_last_final_row']} s after the last final row)")
    for caller, n in figures["api_calls_per_run_by_caller"].items():
        print(f"  {caller:<32} {n}")
    for operation, n in figures["api_calls_per_run"].items():
        print(f"  {operation:<40} {n}")
    print(f"emulation calls per run (not counted above): {figures['emulation_calls_per_run']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if len(finals) == args.files and figures["statuses"] == {"SUCCEEDED": args.files} else 1


if __name__ == "__main__":
    sys.exit(main())
