"""A SageMaker processing job in miniature: reads the CSVs under --prefix in the input bucket,
drops blank and duplicate rows, and writes a summary to the run data bucket."""

import argparse
import json
import os
import time

import boto3

parser = argparse.ArgumentParser()
parser.add_argument("--prefix", default="")
prefix = parser.parse_known_args()[0].prefix
s3 = boto3.client("s3")
files = {}
for item in s3.list_objects_v2(Bucket=os.environ["INPUT_BUCKET"], Prefix=prefix).get("Contents", []):
    if item["Key"].endswith(".csv"):
        rows = s3.get_object(Bucket=os.environ["INPUT_BUCKET"], Key=item["Key"])["Body"].read().decode().splitlines()
        kept = list(dict.fromkeys(row for row in rows if row.strip()))
        files[item["Key"]] = {"rows": len(rows), "kept": len(kept)}
time.sleep(float(os.environ.get("JOBLINE_ARG_SECONDS", "0")))
summary = {"prefix": prefix, "files": files, "attempt": os.environ["JOBLINE_ATTEMPT"]}
key = f"clean/{os.environ['JOBLINE_RUN_ID']}.json"
s3.put_object(Bucket=os.environ["RESULT_BUCKET"], Key=key, Body=json.dumps(summary).encode())
print(f"cleaned {len(files)} file(s) under {prefix!r}: s3://{os.environ['RESULT_BUCKET']}/{key}")
