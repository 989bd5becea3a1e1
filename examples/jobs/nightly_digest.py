"""The nightly digest: what the schedule asked for, written to S3."""

import json
import os

import boto3

event = json.loads(os.environ.get("JOBLINE_TRIGGER_EVENT") or "{}")
digest = {"schedule": event.get("schedule"), "scheduled_time": event.get("scheduled_time")}
key = f"digests/{os.environ['JOBLINE_RUN_ID']}.json"
boto3.client("s3").put_object(Bucket=os.environ["RESULT_BUCKET"], Key=key, Body=json.dumps(digest).encode())
print(f"digest for {digest['scheduled_time']} written to s3://{os.environ['RESULT_BUCKET']}/{key}")
