"""`make demo`: the whole pipeline on this machine, narrated.

Starts the local stack with the demo catalog (examples/demo-jobs.yaml), then triggers runs the
ways jobline is triggered in production: files dropped in S3, an event on the job bus, messages
on the trigger queue (one malformed) and a schedule; one job runs on each newer backend (Batch
service job for SageMaker training, SageMaker processing, Glue); a 20-line manifest fans out into
20 runs. It shows the runs moving as they move and ends with the run table and the fan-out's
counts. Exit status 0 when every run ended as this script expects."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobline_local.client import LocalStack
from jobline_local.runs import attempts_of, duration_seconds, is_final, trigger_of

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "examples" / "demo-jobs.yaml"
CLOCK_SPEED = 60
MALFORMED = '{"job": "word-count", "arguments": '  # cut short: not JSON

CSV_FILES = {
    "incoming/sales.csv": "region,product,note\nnorth,apples,fresh apples sold well\nsouth,pears,apples and pears\n",
    "incoming/notes.csv": "id,text\n1,the quick brown fox\n2,jumps over the lazy dog\n3,the end\n",
}
# What each run must end as: (job, trigger) -> (status, attempts) for every run of that pair.
EXPECTED = {
    ("word-count", "s3"): ("SUCCEEDED", 1),
    ("flaky-report", "bus"): ("SUCCEEDED", 2),
    ("always-fails", "sqs"): ("FAILED", 2),
    ("slow-export", "sqs"): ("TIMEOUT", 1),
    ("nightly-digest", "schedule"): ("SUCCEEDED", 1),
    ("train-model", "sqs"): ("SUCCEEDED", 1),
    ("clean-data", "sqs"): ("SUCCEEDED", 1),
    ("glue-etl", "sqs"): ("SUCCEEDED", 1),
}
# The newer backends, one job each, and what runs it on AWS.
BACKEND_JOBS = {
    "train-model": "a Batch service job: SageMaker training",
    "clean-data": "a SageMaker processing job",
    "glue-etl": "a Glue job run",
}
# What each of them writes to the run data bucket.
BACKEND_OUTPUTS = {"train-model": "models/{}.json", "clean-data": "clean/{}.json", "glue-etl": "glue-example/{}-1.json"}
FANOUT_NAMES = [f"guest-{n:02d}" for n in range(1, 21)]
FANOUT_KEY = "manifests/guests.csv"
EXPECTED["greet", "manifest"] = ("SUCCEEDED", 1)
EXPECTED_COUNT = {("word-count", "s3"): len(CSV_FILES), ("greet", "manifest"): len(FANOUT_NAMES)}


class Demo:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.t0 = time.monotonic()
        self.seen: dict[str, tuple[Any, ...]] = {}
        self.activity_seq = 0
        self.schedules_seen: set[str] = set()

    def say(self, text: str = "") -> None:
        print(text, flush=True)

    def stamp(self, text: str) -> None:
        print(f"  [{time.monotonic() - self.t0:5.1f}s] {text}", flush=True)

    # ------------------------------------------------------------ triggers
    def trigger(self) -> None:
        st = self.stack
        bucket = st.output("InputBucketName")
        self.say(
            f"1. Dropping {len(CSV_FILES)} CSV files into s3://{bucket}/incoming/ (job word-count counts their words)"
        )
        for key, text in CSV_FILES.items():
            st.client("s3").put_object(Bucket=bucket, Key=key, Body=text.encode())
        self.say(f"2. Putting a 'Report Requested' event on the bus {st.output('JobBusName')} (job flaky-report:")
        self.say("   its first attempt exits 3, the retry succeeds)")
        detail = {"request_id": "demo-report-1", "day": datetime.now(UTC).strftime("%Y-%m-%d")}
        st.client("events").put_events(
            Entries=[
                {
                    "Source": "demo.reports",
                    "DetailType": "Report Requested",
                    "Detail": json.dumps(detail),
                    "EventBusName": st.output("JobBusName"),
                }
            ]
        )
        self.say("3. Sending 3 messages to the trigger queue: always-fails (every attempt exits 1),")
        self.say("   slow-export (overruns its 60 s timeout) and a malformed one (it must end in the DLQ)")
        st.client("sqs").send_message_batch(
            QueueUrl=st.output("TriggerQueueUrl"),
            Entries=[
                {"Id": "fails", "MessageBody": json.dumps({"job": "always-fails", "idempotency_key": "demo-fails"})},
                {"Id": "slow", "MessageBody": json.dumps({"job": "slow-export", "idempotency_key": "demo-slow"})},
                {"Id": "malformed", "MessageBody": MALFORMED},
            ],
        )
        self.say("4. One message per newer backend: " + ", ".join(f"{j} ({w})" for j, w in BACKEND_JOBS.items()))
        st.client("sqs").send_message_batch(
            QueueUrl=st.output("TriggerQueueUrl"),
            Entries=[
                {"Id": job, "MessageBody": json.dumps({"job": job, "idempotency_key": f"demo-{job}"})}
                for job in BACKEND_JOBS
            ],
        )
        self.say(
            f"5. Dropping a {len(FANOUT_NAMES)}-line manifest at s3://{bucket}/{FANOUT_KEY} (job greet, a fan-out:"
        )
        self.say("   one run per line, created once, paced by the fan-out queue; its counts on its FANOUT# record)")
        st.client("s3").put_object(Bucket=bucket, Key=FANOUT_KEY, Body="\n".join(["name", *FANOUT_NAMES, ""]).encode())
        self.say("6. The schedule nightly-digest.nightly, cron(0 2 * * ? *), fires when the local clock")
        self.say(f"   (started at {self.stack.info['clock']['now']}, {CLOCK_SPEED}x) passes 02:00 UTC")
        self.say()

    # ------------------------------------------------------------ the live view
    def watch(self, timeout: float) -> list[dict[str, Any]]:
        self.say("Runs as they move (run id, status, reason):")
        deadline = time.monotonic() + timeout
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            rows = self.stack.runs()
            for row in rows:
                if trigger_of(row) == "manifest" and not is_final(row):
                    continue  # the fan-out's 20 runs: only their ends, or the view drowns in them
                state = (row.get("status"), row.get("reason"), row.get("attempt"))
                if self.seen.get(row["run_id"]) != state:
                    self.seen[row["run_id"]] = state
                    attempt = f" (attempt {row.get('attempt')})" if row.get("attempt") else ""
                    self.stamp(f"{row['run_id']:<38} {row.get('status', '?'):<9} {row.get('reason', '')}{attempt}")
            self.show_activity()
            if self.done(rows):
                return rows
            time.sleep(1)
        self.say(f"  ... stopped watching after {timeout:.0f} s")
        return rows

    def show_activity(self) -> None:
        for line in self.stack.activity(self.activity_seq):
            self.activity_seq = line["seq"]
            message = line["message"]
            if line["component"] == "schedule" and "fired" in message:
                schedule = message.split(":", 1)[0]
                if schedule not in self.schedules_seen:  # the first fire of each schedule is enough
                    self.schedules_seen.add(schedule)
                    self.stamp(f"scheduler: {message}")
            elif line["component"] == "sqs":
                self.stamp(f"sqs: {message}")
            elif line["component"] == "batch" and (": SUCCEEDED" in message or ": FAILED" in message):
                self.stamp(f"batch job {message}")
            elif line["component"] in ("sagemaker", "training", "glue") and line.get("status"):
                self.stamp(message)

    def dead_letters(self) -> list[str]:
        sqs = self.stack.client("sqs")
        messages = sqs.receive_message(
            QueueUrl=self.stack.output("TriggerDeadLetterQueueUrl"), MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])
        return [m["Body"] for m in messages]

    def done(self, rows: list[dict[str, Any]]) -> bool:
        groups = {(r["job"], trigger_of(r)) for r in rows}
        if not set(EXPECTED) <= groups or not all(is_final(r) for r in rows):
            return False
        if any(sum(1 for r in rows if (r["job"], trigger_of(r)) == g) < n for g, n in EXPECTED_COUNT.items()):
            return False
        return MALFORMED in self.dead_letters() and self.fanout_counted()

    def fanout(self) -> dict[str, Any] | None:
        from boto3.dynamodb.types import TypeDeserializer

        items = self.stack.client("dynamodb").scan(
            TableName=self.stack.output("RunTableName"),
            FilterExpression="begins_with(pk, :p)",
            ExpressionAttributeValues={":p": {"S": "FANOUT#"}},
            ConsistentRead=True,
        )["Items"]
        records = [{k: TypeDeserializer().deserialize(v) for k, v in item.items()} for item in items]
        return next((r for r in records if r["manifest"].endswith(FANOUT_KEY)), None)

    def fanout_counted(self) -> bool:
        record = self.fanout()
        return record is not None and sum(record.get("ended", {}).values()) == len(FANOUT_NAMES)

    # ------------------------------------------------------------ the verdict
    def table(self, rows: list[dict[str, Any]]) -> None:
        header = ("job", "trigger", "status", "reason", "attempts", "duration")
        lines = [
            (
                r["job"],
                trigger_of(r),
                str(r.get("status")),
                str(r.get("reason", "")),
                str(attempts_of(r)),
                f"{duration_seconds(r):.1f}s" if duration_seconds(r) is not None else "-",
            )
            for r in rows
        ]
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
        self.say("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        self.say("  ".join("-" * w for w in widths))
        for line in lines:
            self.say("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)))

    def fanout_summary(self) -> list[str]:
        record = self.fanout()
        if record is None:
            return [f"no fan-out record for {FANOUT_KEY}"]
        ended = ", ".join(f"{status} {int(n)}" for status, n in sorted(record.get("ended", {}).items())) or "none"
        self.say(f"  {record['fanout_id']}  {record['state']}  manifest {record['manifest']}")
        created = len([r for r in self.stack.runs() if r.get("fanout_id") == record["fanout_id"]])
        self.say(
            f"  items {int(record['item_count'])}, rejected {int(record['rejected'])}, runs {created}, ended: {ended}"
        )
        self.say(f"  (jobline fanouts get {record['fanout_id']} --local {self.stack.info['state_dir']})")
        want = len(FANOUT_NAMES)
        if (int(record["item_count"]), created, record.get("ended")) != (
            want,
            want,
            {"SUCCEEDED": want},
        ):
            return [f"fan-out {record['fanout_id']}: counts are not {want} items, {want} runs, {want} SUCCEEDED"]
        return []

    def check(self, rows: list[dict[str, Any]]) -> list[str]:
        problems = []
        for (job, trigger), (status, attempts) in EXPECTED.items():
            mine = [r for r in rows if (r["job"], trigger_of(r)) == (job, trigger)]
            want = EXPECTED_COUNT.get((job, trigger), 1)
            if len(mine) != want:
                problems.append(f"{job} ({trigger}): {len(mine)} run(s), expected {want}")
            for r in mine:
                if (r.get("status"), attempts_of(r)) != (status, attempts):
                    problems.append(
                        f"{r['run_id']}: {r.get('status')} after {attempts_of(r)} attempt(s), "
                        f"expected {status} after {attempts}"
                    )
        unexpected = [r["run_id"] for r in rows if (r["job"], trigger_of(r)) not in EXPECTED]
        if unexpected:
            problems.append(f"unexpected runs: {unexpected}")
        if MALFORMED not in self.dead_letters():
            problems.append("the malformed message is not in the trigger dead-letter queue")
        for r in rows:
            if r["job"] in BACKEND_OUTPUTS and r.get("status") == "SUCCEEDED":
                key = BACKEND_OUTPUTS[r["job"]].format(r["run_id"])
                try:
                    body = self.stack.client("s3").get_object(Bucket=self.stack.output("RunDataBucketName"), Key=key)
                    self.say(f"  {r['job']}: {key} {body['Body'].read().decode()[:90]}")
                except Exception as error:
                    problems.append(f"{r['run_id']}: no output at {key} ({error})")
        for r in rows:
            if r["job"] == "word-count" and r.get("status") == "SUCCEEDED":
                key = f"results/{r['run_id']}.json"
                try:
                    body = self.stack.client("s3").get_object(Bucket=self.stack.output("RunDataBucketName"), Key=key)
                    result = json.loads(body["Body"].read())
                    self.say(f"  {result['source']}: {result['words']} words, top {result['top'][:3]}")
                except Exception as error:
                    problems.append(f"{r['run_id']}: no result at {key} ({error})")
        return problems


def clock_start() -> str:
    return datetime.now(UTC).replace(hour=1, minute=59, second=30, microsecond=0).isoformat()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobline_local.demo", description=__doc__)
    parser.add_argument("--timeout", type=float, default=240, help="seconds to wait for every run to end")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".local-stack" / "demo")
    args = parser.parse_args(argv)

    print("jobline demo: the real template, functions, state machine and run table on a local AWS;")
    print("jobs run as local processes. Starting the local stack...", flush=True)
    stack = LocalStack(catalog=CATALOG, state_dir=args.state_dir, clock_speed=CLOCK_SPEED, clock_start=clock_start())
    started = time.monotonic()
    try:
        stack.start()
        info = stack.info
        print(f"Local stack up in {time.monotonic() - started:.1f} s at {info['endpoint']}")
        print(f"  catalog  {CATALOG.relative_to(ROOT)}    logs  {info['state_dir']}/logs")
        print()
        demo = Demo(stack)
        demo.trigger()
        rows = demo.watch(args.timeout)
        print()
        print("The run table (every run, read from DynamoDB; the fan-out's runs are counted below):")
        demo.table([r for r in rows if trigger_of(r) != "manifest"])
        print()
        print("The fan-out (its FANOUT# record: one run per manifest line):")
        problems = demo.fanout_summary()
        print()
        print("What the jobs wrote:")
        problems += demo.check(rows)
        print()
        print(f"The malformed message is in the trigger DLQ: {MALFORMED in demo.dead_letters()}")
        print()
        print("Where to look next:")
        print(f"  function logs   {info['logs']['lambda']}/<Function>.log   (START/END/REPORT lines, Powertools JSON)")
        print(f"  job logs        {info['logs']['batch']}/<log stream>.log   (also in CloudWatch Logs)")
        print(f"                  {info['state_dir']}/logs/{{sagemaker,training,glue}}/   (the newer backends)")
        print("  your own stack  jobline local --catalog examples/demo-jobs.yaml   (then any AWS CLI or SDK")
        print("                  with AWS_ENDPOINT_URL, see README)")
        print()
        if problems:
            print("DEMO FAILED:")
            for problem in problems:
                print(f"  - {problem}")
            return 1
        print(f"DEMO OK: every run ended as expected ({time.monotonic() - started:.0f} s in all).")
        return 0
    except Exception as error:
        print(f"DEMO FAILED: {error}", file=sys.stderr)
        print(stack.console_text(), file=sys.stderr)
        return 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
