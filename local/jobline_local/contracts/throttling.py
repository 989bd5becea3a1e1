"""Each submit API's rate quota, as a token bucket per (account, region, operation): a call over
the rate is answered with the error that service returns when it throttles (name, HTTP status).

Rates come from AWS's documented defaults (docs/CONTRACTS.md cites each) and can be overridden by
`configure({...})` or the environment: JOBLINE_QUOTA_<OPERATION>=<rate per second>[:<burst>],
e.g. JOBLINE_QUOTA_SUBMITJOB=20 or JOBLINE_QUOTA_STARTEXECUTION=300:1300."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from jobline_local.contracts.core import Call, Refusal


@dataclass(frozen=True)
class Quota:
    rate: float  # tokens added per second
    burst: float  # bucket size
    code: str
    status: int
    message: str


# (service, operation) -> AWS's default quota and throttling answer.
DEFAULTS: dict[tuple[str, str], Quota] = {
    # Batch user guide, service quotas (https://docs.aws.amazon.com/batch/latest/userguide/service_limits.html):
    # 50 TPS for SubmitJob, fixed; "Too Many Requests (Service: AWSBatch; Status Code: 429;
    # Error Code: TooManyRequestsException)" (re:Post knowledge center, aws-batch-requests-error).
    ("batch", "SubmitJob"): Quota(50, 50, "TooManyRequestsException", 429, "Too Many Requests"),
    # Batch service jobs: SubmitServiceJob 5 TPS (same page).
    ("batch", "SubmitServiceJob"): Quota(5, 5, "TooManyRequestsException", 429, "Too Many Requests"),
    # SageMaker: ThrottlingException 400 "Rate exceeded" (SageMaker API reference, Common Errors);
    # AWS publishes no default TPS for these two APIs: 1/s is an assumption, set it per stack.
    ("sagemaker", "CreateProcessingJob"): Quota(1, 1, "ThrottlingException", 400, "Rate exceeded"),
    ("sagemaker", "CreateTrainingJob"): Quota(1, 1, "ThrottlingException", 400, "Rate exceeded"),
    # Glue: "Rate exceeded (Service: AWSGlue; Status Code: 400; Error Code: ThrottlingException)"
    # (re:Post knowledge center, glue-throttling-rate-exceeded); no published TPS: 10/s assumed.
    ("glue", "StartJobRun"): Quota(10, 10, "ThrottlingException", 400, "Rate exceeded"),
    # Step Functions, Standard quotas, API action throttling: StartExecution bucket 1,300, refill
    # 300/s (us-east-1, us-west-2, eu-west-1; 800 and 150 elsewhere); ThrottlingException 400
    # (Step Functions API reference, Common Errors).
    ("stepfunctions", "StartExecution"): Quota(300, 1300, "ThrottlingException", 400, "Rate exceeded"),
}

_overrides: dict[tuple[str, str], tuple[float, float]] = {}
_buckets: dict[tuple[str, str, str, str], list[float]] = {}  # key -> [tokens, last refill]
_lock = threading.Lock()


def configure(rates: dict[str, float | tuple[float, float]] | None = None) -> None:
    """Set rates by operation name ({"SubmitJob": 2} or {"StartExecution": (300, 1300)}); None
    restores AWS's defaults. Buckets start full again."""
    with _lock:
        _overrides.clear()
        _buckets.clear()
        for operation, value in (rates or {}).items():
            keys = [k for k in DEFAULTS if k[1] == operation]
            if not keys:
                raise KeyError(f"no rate quota for {operation}: one of {sorted(k[1] for k in DEFAULTS)}")
            key = keys[0]
            rate, burst = value if isinstance(value, tuple) else (value, value)
            _overrides[key] = (float(rate), float(burst))


def rate_of(key: tuple[str, str]) -> tuple[float, float]:
    if key in _overrides:
        return _overrides[key]
    env = os.environ.get(f"JOBLINE_QUOTA_{key[1].upper()}")
    if env:
        rate, _, burst = env.partition(":")
        return float(rate), float(burst or rate)
    return DEFAULTS[key].rate, DEFAULTS[key].burst


def check(call: Call) -> None:
    key = (call.service, call.operation)
    quota = DEFAULTS.get(key)
    if quota is None:
        return
    rate, burst = rate_of(key)
    now = time.monotonic()
    with _lock:
        bucket = _buckets.setdefault((call.account, call.region, *key), [burst, now])
        bucket[0] = min(burst, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if bucket[0] < 1:
            raise Refusal(quota.code, quota.message, quota.status)
        bucket[0] -= 1
