"""`jobline jobs|runs|fanouts ...`: see and steer a stack's jobs, runs and fan-outs from a terminal.

Every command takes --json (the data, for scripts) and, but for `jobs validate` (a file, no stack),
where to go: --stack NAME [--region R] [--profile P] for a deployed stack, --local [STATE_DIR] for
the local stack. Exit codes: 0 done (for waits: SUCCEEDED), 1 AWS refused or failed (for
`jobs validate`: the catalog has errors), 2 bad request (unknown run or job, bad filter, too many
ids, ...), 3 FAILED, 4 TIMEOUT, 5 STOPPED, 6 still going when --timeout ran out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from jobline.errors import CatalogError, RejectedInput
from jobline.fanout_operations import from_operations
from jobline.operations import Operations
from jobline.operator_errors import Conflict, NotFound
from jobline_tools import cli_format
from jobline_tools.catalog_check import check_catalog
from jobline_tools.connect import DEFAULT_LOCAL_STATE, TargetError, connect

EXIT_OK, EXIT_AWS, EXIT_BAD_REQUEST, EXIT_STILL_GOING = 0, 1, 2, 6
EXIT_INVALID_CATALOG = 1  # `jobs validate`
EXIT_BY_STATUS = {"SUCCEEDED": 0, "FAILED": 3, "TIMEOUT": 4, "STOPPED": 5}


def parser() -> argparse.ArgumentParser:
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print the data as JSON (for scripts)")
    common = argparse.ArgumentParser(add_help=False, parents=[output])
    common.add_argument("--stack", help="a deployed stack's name")
    common.add_argument("--region", help="its region (default: your AWS configuration's)")
    common.add_argument("--profile", help="the AWS profile to use")
    common.add_argument(
        "--local",
        nargs="?",
        const=DEFAULT_LOCAL_STATE,
        type=Path,
        metavar="STATE_DIR",
        help=f"the local stack (`jobline local`); its state directory, default {DEFAULT_LOCAL_STATE}",
    )
    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument("--interval", type=float, default=5.0, help="seconds between looks (default 5)")
    waiting.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds")
    token = argparse.ArgumentParser(add_help=False)
    token.add_argument("--client-token", help="names the run: repeating the command with it starts nothing new")

    root = argparse.ArgumentParser(prog="jobline", description="See and steer jobline's jobs and runs.")
    groups = root.add_subparsers(dest="group", required=True, metavar="{jobs,runs,fanouts}")
    jobs = groups.add_parser("jobs", help="the job catalog").add_subparsers(dest="action", required=True)
    jobs.add_parser("list", parents=[common], help="every job").set_defaults(command=jobs_list)
    show = jobs.add_parser("show", parents=[common], help="one job's definition")
    show.add_argument("name")
    show.set_defaults(command=jobs_show)
    validate = jobs.add_parser(
        "validate", parents=[output], help="check a catalog file as the stack and `make generate` will (no stack)"
    )
    validate.add_argument(
        "file", type=Path, metavar="FILE", help="a job catalog (like layers/jobline/jobline/jobs.yaml)"
    )
    validate.set_defaults(command=jobs_validate)

    runs = groups.add_parser("runs", help="runs of jobs").add_subparsers(dest="action", required=True)
    start = runs.add_parser("start", parents=[common, token, waiting], help="start a manual run")
    start.add_argument("job")
    start.add_argument("--param", action="append", type=_param, default=[], metavar="NAME=VALUE")
    start.add_argument("--wait", action="store_true", help="then wait for its end (exit code: its outcome)")
    _fanout_sources(start.add_mutually_exclusive_group())
    start.set_defaults(command=runs_start)
    get = runs.add_parser("get", parents=[common], help="one run: status, attempts, trigger, links")
    get.add_argument("run_id")
    get.set_defaults(command=runs_get)
    listing = runs.add_parser("list", parents=[common], help="runs, newest first")
    listing.add_argument("--job")
    listing.add_argument("--status", help="PENDING, STARTING, RUNNING, SUCCEEDED, FAILED, TIMEOUT or STOPPED")
    listing.add_argument("--since", help="an age (30m, 6h, 7d) or a time (2026-11-20T08:00:00Z)")
    listing.add_argument("--max-results", type=int, default=None, help="1 to 200 (default 100)")
    listing.add_argument("--next-token", help="the next_token of the previous page")
    listing.set_defaults(command=runs_list)
    stop = runs.add_parser("stop", parents=[common], help="stop 1 to 25 runs")
    stop.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    stop.set_defaults(command=runs_stop)
    retry = runs.add_parser("retry", parents=[common, token, waiting], help="run a finished run again")
    retry.add_argument("run_id")
    retry.add_argument("--wait", action="store_true", help="then wait for its end (exit code: its outcome)")
    retry.set_defaults(command=runs_retry)
    wait = runs.add_parser("wait", parents=[common, waiting], help="show a run's progress until it ends")
    wait.add_argument("run_id")
    wait.set_defaults(command=runs_wait)

    fan = groups.add_parser("fanouts", help="fan-outs: one run per manifest item").add_subparsers(
        dest="action", required=True
    )
    fan_start = fan.add_parser("start", parents=[common, token], help="start a fan-out of a job's manifest trigger")
    fan_start.add_argument("job")
    _fanout_sources(fan_start.add_mutually_exclusive_group(required=True))
    fan_start.set_defaults(command=fanouts_start)
    fan_list = fan.add_parser("list", parents=[common], help="fan-outs, newest first")
    fan_list.add_argument("--max-results", type=int, default=None, help="1 to 200 (default 50)")
    fan_list.add_argument("--next-token", help="the next_token of the previous page")
    fan_list.set_defaults(command=fanouts_list)
    fan_get = fan.add_parser("get", parents=[common], help="one fan-out: its manifest and counts")
    fan_get.add_argument("fanout_id")
    fan_get.set_defaults(command=fanouts_get)
    fan_stop = fan.add_parser("stop", parents=[common], help="stop a fan-out: its queued items and its runs")
    fan_stop.add_argument("fanout_id")
    fan_stop.set_defaults(command=fanouts_stop)
    return root


def _fanout_sources(group: argparse._MutuallyExclusiveGroup) -> None:
    group.add_argument(
        "--manifest", metavar="FILE|s3://B/K", help="a CSV (with a header) or JSON Lines manifest: one run per line"
    )
    group.add_argument("--items", metavar="JSON", type=_items, help='a JSON list of items, e.g. \'[{"name": "a"}]\'')


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.command is jobs_validate:
        return jobs_validate(args)
    try:
        ops = connect(args.stack, args.region, args.profile, args.local)
        return args.command(ops, args)
    except (RejectedInput, NotFound, Conflict, TargetError, CatalogError) as error:
        return _fail(str(error), EXIT_BAD_REQUEST)
    except ClientError as error:
        return _fail(f"AWS refused: {error}", EXIT_AWS)
    except BotoCoreError as error:
        return _fail(f"cannot reach AWS: {error}", EXIT_AWS)


# ---------------------------------------------------------------- commands
def jobs_list(ops: Operations, args: argparse.Namespace) -> int:
    return _emit(args, ops.list_jobs(), cli_format.jobs)


def jobs_show(ops: Operations, args: argparse.Namespace) -> int:
    return _emit(args, ops.show_job(args.name), cli_format.job)


def jobs_validate(args: argparse.Namespace) -> int:
    report = check_catalog(args.file)
    if args.json:
        print(json.dumps(report.summary(), indent=2))
    elif report.problems:
        print("\n".join(f"{args.file}: {problem.message}" for problem in report.problems))
        print(f"{args.file}: {cli_format.count(len(report.problems), 'error')}")
    else:
        summary = report.summary()
        jobs, schedules = cli_format.count(summary["jobs"], "job"), cli_format.count(summary["schedules"], "schedule")
        print(f"{args.file}: valid, {jobs} with {schedules}")
    return EXIT_INVALID_CATALOG if report.problems else EXIT_OK


def runs_start(ops: Operations, args: argparse.Namespace) -> int:
    if args.manifest or args.items is not None:
        if args.param or args.wait:
            return _fail("--param and --wait start one run; a fan-out takes its arguments from its items", 2)
        return fanouts_start(ops, args)
    names = [name for name, _ in args.param]
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        return _fail(f"parameters given twice: {repeated}", EXIT_BAD_REQUEST)
    started = ops.start_run(args.job, dict(args.param), args.client_token, requested_by="jobline CLI")
    return _started(ops, args, started, "started" if started["created"] else "already started (same client token)")


def runs_get(ops: Operations, args: argparse.Namespace) -> int:
    return _emit(args, ops.get_run(args.run_id), cli_format.run)


def runs_list(ops: Operations, args: argparse.Namespace) -> int:
    page = ops.list_runs(args.job, args.status, args.since, args.max_results, args.next_token)

    def render(data: dict[str, Any]) -> str:
        text = cli_format.runs(data["runs"]) if data["runs"] else "no runs"
        return text + (f"\n\nmore: add --next-token {data['next_token']}" if data["next_token"] else "")

    return _emit(args, page, render)


def runs_stop(ops: Operations, args: argparse.Namespace) -> int:
    result = ops.stop_runs(args.run_ids)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for run in result["stopped"]:
            print(f"stopped  {run['run_id']}" + (f"  ({run['warning']})" if "warning" in run else ""))
    for error in result["errors"]:
        print(f"jobline: not stopped {error['run_id']}: {error['message']}", file=sys.stderr)
    return EXIT_AWS if result["errors"] else EXIT_OK


def runs_retry(ops: Operations, args: argparse.Namespace) -> int:
    retried = ops.retry_run(args.run_id, args.client_token)
    verb = "started" if retried["created"] else "already started (same client token)"
    return _started(ops, args, retried, f"{verb}, a retry of {retried['retry_of']}")


def runs_wait(ops: Operations, args: argparse.Namespace) -> int:
    return _wait(ops, args, args.run_id)


def fanouts_start(ops: Operations, args: argparse.Namespace) -> int:
    source: dict[str, Any] = {"items": args.items} if args.items is not None else {}
    if args.manifest and args.manifest.startswith("s3://"):
        source["manifest"] = args.manifest
    elif args.manifest:
        path = Path(args.manifest)
        fmt = (
            "csv"
            if path.suffix.lower() == ".csv"
            else "jsonl"
            if path.suffix.lower() in (".jsonl", ".ndjson")
            else None
        )
        try:
            source.update(manifest_file=path.read_bytes(), format=fmt)
        except OSError as error:
            return _fail(f"cannot read {path}: {error.strerror}", EXIT_BAD_REQUEST)
    started = from_operations(ops).start(args.job, client_token=args.client_token, **source)
    return _emit(
        args,
        started,
        lambda r: (
            f"{r['fanout_id']}  fan-out requested ({r['manifest']})\nwatch it: jobline fanouts get {r['fanout_id']}"
        ),
    )


def fanouts_list(ops: Operations, args: argparse.Namespace) -> int:
    page = from_operations(ops).list(args.max_results, args.next_token)

    def render(data: dict[str, Any]) -> str:
        text = cli_format.fanouts(data["fanouts"]) if data["fanouts"] else "no fan-outs"
        return text + (f"\n\nmore: add --next-token {data['next_token']}" if data["next_token"] else "")

    return _emit(args, page, render)


def fanouts_get(ops: Operations, args: argparse.Namespace) -> int:
    return _emit(args, from_operations(ops).get(args.fanout_id), cli_format.fanout)


def fanouts_stop(ops: Operations, args: argparse.Namespace) -> int:
    """Page by page until every created run of the fan-out was asked to stop."""
    fanouts, token, stopped, errors = from_operations(ops), None, [], []
    while True:
        result = fanouts.stop(args.fanout_id, token)
        stopped += result["stopped_runs"]
        errors += result["errors"]
        if not (token := result["next_token"]):
            break
    result.update(stopped_runs=stopped, errors=errors, next_token=None)
    _emit(args, result, lambda r: f"{r['fanout_id']}  {r['state']}: {len(r['stopped_runs'])} run(s) stopped")
    for error in errors:
        print(f"jobline: not stopped {error['run_id']}: {error['message']}", file=sys.stderr)
    return EXIT_AWS if errors else EXIT_OK


# ---------------------------------------------------------------- helpers
def _started(ops: Operations, args: argparse.Namespace, result: dict[str, Any], what: str) -> int:
    if not args.wait:
        return _emit(args, result, lambda r: f"{r['run_id']}  {what}\nwatch it: jobline runs wait {r['run_id']}")
    print(f"{result['run_id']}  {what}", file=sys.stderr if args.json else sys.stdout, flush=True)
    return _wait(ops, args, result["run_id"])


def _wait(ops: Operations, args: argparse.Namespace, run_id: str) -> int:
    """A line whenever the status, reason or attempt changes; the exit code is the outcome."""
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    progress = sys.stderr if args.json else sys.stdout
    last = None
    while True:
        view = ops.get_run(run_id)
        if (seen := (view["status"], view["reason"], view["attempt"])) != last:
            print(cli_format.progress(view, time.strftime("%H:%M:%S")), file=progress, flush=True)
            last = seen
        if view["status"] in EXIT_BY_STATUS:
            return _finished(args, view)
        if deadline is not None and time.monotonic() >= deadline:
            return _fail(f"run {run_id} is still {view['status']} after {args.timeout:g} s", EXIT_STILL_GOING)
        time.sleep(args.interval)


def _finished(args: argparse.Namespace, view: dict[str, Any]) -> int:
    took = cli_format.duration(view["duration_seconds"])
    _emit(args, view, lambda v: f"{v['run_id']}  {v['status']} after {took}: {v['reason']}")
    return EXIT_BY_STATUS[view["status"]]


def _emit(args: argparse.Namespace, data: Any, render: Callable[[Any], str]) -> int:
    print(json.dumps(data, indent=2) if args.json else render(data))
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    print(f"jobline: {message}", file=sys.stderr)
    return code


def _items(text: str) -> list[Any]:
    try:
        items = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--items must be a JSON list: {error}") from None
    if not isinstance(items, list):
        raise argparse.ArgumentTypeError("--items must be a JSON list of objects")
    return items


def _param(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not (name and equals):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value
