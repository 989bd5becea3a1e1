"""Count the words of the CSV that triggered this run and write the counts to S3."""

import csv
import io
import json
import os
import re
from collections import Counter

import boto3

event = json.loads(os.environ.get("JOBLINE_TRIGGER_EVENT") or "{}")
s3 = boto3.client("s3")
if "detail" in event:  # S3 Object Created, via EventBridge
    bucket, key = event["detail"]["bucket"]["name"], event["detail"]["object"]["key"]
else:  # an SQS message: {"job": "word-count", "arguments": {...}} names the object itself
    body = event.get("body", {})
    bucket, key = os.environ["JOBLINE_ARG_BUCKET"], os.environ["JOBLINE_ARG_KEY"]

print(f"run {os.environ['JOBLINE_RUN_ID']} attempt {os.environ['JOBLINE_ATTEMPT']}: counting s3://{bucket}/{key}")
text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
words = Counter(
    word.lower() for row in csv.reader(io.StringIO(text)) for cell in row for word in re.findall(r"[\w']+", cell)
)
result = {"source": f"s3://{bucket}/{key}", "words": sum(words.values()), "top": words.most_common(5)}
out = f"results/{os.environ['JOBLINE_RUN_ID']}.json"
s3.put_object(Bucket=os.environ["RESULT_BUCKET"], Key=out, Body=json.dumps(result).encode())
print(f"{result['words']} words; wrote s3://{os.environ['RESULT_BUCKET']}/{out}")
