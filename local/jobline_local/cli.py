"""`jobline local`: the local stack in the foreground, until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path

from jobline_local.stack import Stack, StackOptions, default_template


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jobline local",
        description="Run jobline on one machine: a local AWS (moto) with the stack of template.yaml, "
        "its functions, state machine, schedules and local Batch compute. Stops on Ctrl-C.",
    )
    p.add_argument("--template", type=Path, default=None, help="SAM template (default: ./template.yaml)")
    p.add_argument("--catalog", type=Path, default=None, help="job catalog to use instead of the packaged one")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    p.add_argument("--stack-name", default="jobline-local")
    p.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE", help="template parameter")
    p.add_argument("--state-dir", type=Path, default=Path(".local-stack/local"), help="logs and stack.json")
    p.add_argument("--clock-speed", type=float, default=1.0, help="local clock speed (schedules, retry delays)")
    p.add_argument("--clock-start", type=datetime.fromisoformat, default=None, help="local clock start (ISO 8601)")
    p.add_argument("--lambda-concurrency", type=int, default=2, help="warm workers per function (max)")
    p.add_argument("--job-slots", type=int, default=4, help="Batch jobs running at once")
    p.add_argument("--no-prewarm", action="store_true", help="start function workers on first use")
    p.add_argument("--exit-with-parent", type=int, default=None, metavar="PID", help=argparse.SUPPRESS)
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="print the summary only")
    return p


def summary(info: dict) -> str:
    out = info["outputs"]
    env = (
        f"export AWS_ENDPOINT_URL={info['endpoint']} AWS_ACCESS_KEY_ID=testing "
        f"AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={info['region']}"
    )
    lines = [
        f"jobline local stack is up (moto {info['moto']}, {info['started_in_seconds']} s)",
        f"  endpoint        {info['endpoint']}",
        f"  input bucket    {out.get('InputBucketName', '-')}",
        f"  run data bucket {out.get('RunDataBucketName', '-')}",
        f"  job bus         {out.get('JobBusName', '-')}",
        f"  trigger queue   {out.get('TriggerQueueUrl', '-')}",
        f"  run table       {out.get('RunTableName', '-')}",
        f"  event DLQ       {out.get('EventDeadLetterQueueUrl', '-')}",
        f"  state machines  {out.get('RunStateMachinePrefix', '-')}<policy>",
        f"  catalog         {info['catalog']}",
        f"  logs            {info['state_dir']}/logs (lambda/<Function>.log, batch/<log stream>.log)",
        f"  local clock     {info['clock']['now']} x{info['clock']['speed']:g}",
        "",
        "Use any AWS client against it:",
        f"  {env}",
        f"  aws s3 cp data.csv s3://{out.get('InputBucketName', 'BUCKET')}/incoming/data.csv",
        f"  aws dynamodb scan --table-name {out.get('RunTableName', 'TABLE')}",
    ]
    if info.get("skipped"):
        lines.append(f"  (not created locally: {', '.join(info['skipped'])})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stdout,
    )
    for noisy in ("werkzeug", "botocore", "urllib3", "moto", "boto3"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    parameters = dict(item.split("=", 1) for item in args.parameter)
    options = StackOptions(
        template=(args.template or default_template()).resolve(),
        catalog=args.catalog,
        port=args.port,
        region=args.region,
        stack_name=args.stack_name,
        parameters=parameters,
        state_dir=args.state_dir,
        clock_speed=args.clock_speed,
        clock_start=args.clock_start,
        lambda_concurrency=args.lambda_concurrency,
        job_slots=args.job_slots,
        prewarm=not args.no_prewarm,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stack = Stack(options)
    code = 0
    try:
        info = stack.start()
        print(summary(info), flush=True)
        print("\nCtrl-C stops the stack.", flush=True)
        while not stop.wait(0.5):
            if args.exit_with_parent and os.getppid() != args.exit_with_parent:
                break
            if stack.stopped.is_set():
                break
    except Exception as error:
        print(f"jobline local: {error}", file=sys.stderr, flush=True)
        code = 1
    finally:
        stack.stop()
        print("jobline local: stopped", flush=True)
        sys.stdout.flush()
        sys.stderr.flush()
    # moto's Step Functions engine leaves execution threads behind: end the process outright.
    os._exit(code)


if __name__ == "__main__":
    main()
