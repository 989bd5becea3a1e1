"""Fails on its first attempt, succeeds on the next: a retry strategy at work."""

import os
import sys

attempt = int(os.environ["JOBLINE_ATTEMPT"])
day = os.environ.get("JOBLINE_ARG_DAY", "")
print(f"report for {day or 'yesterday'}: attempt {attempt} of {os.environ['JOBLINE_MAX_ATTEMPTS']}")
if attempt == 1:
    print("the upstream export is not there yet: failing this attempt", file=sys.stderr)
    sys.exit(3)
print("report built")
