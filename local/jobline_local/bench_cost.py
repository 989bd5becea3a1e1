"""What a run costs on AWS, modelled from what the bench measured: billed state transitions from
each execution's history, and the meter's DynamoDB units, SQS requests and custom events.

Prices (us-east-1, issue 11's model):
- Step Functions Standard: $0.025 per 1,000 state transitions; "each retry will be charged as an
  additional state transition" (https://aws.amazon.com/step-functions/pricing/);
- DynamoDB on demand: $0.625 per million write request units, $0.125 per million read request
  units (https://aws.amazon.com/dynamodb/pricing/on-demand/);
- Lambda at 256 MB: $0.20 per million requests plus 60 ms billed at $0.0000166667 per GB-second
  (x86), i.e. $0.45 per million invocations (https://aws.amazon.com/lambda/pricing/); the same for
  every function, batches of an event source mapping counted as one invocation each;
- SQS standard: $0.40 per million requests (https://aws.amazon.com/sqs/pricing/); empty receives
  of an idle queue's long poll are left out (a fixed cost per queue, not per run);
- EventBridge custom events: $1.00 per million entries put
  (https://aws.amazon.com/eventbridge/pricing/); events of AWS services on the default bus are free."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

PRICES = {
    "transitions": 0.025 / 1000,
    "dynamodb_wcu": 0.625 / 1e6,
    "dynamodb_rcu": 0.125 / 1e6,
    "lambda_invocations": 0.20 / 1e6 + 0.0000166667 * 0.25 * 0.060,
    "sqs_requests": 0.40 / 1e6,
    "custom_events": 1.00 / 1e6,
}
# The events that start a task's work: a second one in the same visit of a state is a retry.
_SCHEDULED = {"TaskScheduled", "ActivityScheduled", "LambdaFunctionScheduled"}


def billed_transitions(events: Iterable[dict[str, Any]]) -> int:
    """State transitions AWS bills for one execution's history: every state entered, plus every
    retry (a task scheduled again within the same visit of its state)."""
    transitions = 0
    scheduled_in_visit = 0
    for event in events:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            transitions += 1
            scheduled_in_visit = 0
        elif kind in _SCHEDULED:
            scheduled_in_visit += 1
            transitions += scheduled_in_visit > 1
    return transitions


def cost_per_million(per_run: dict[str, float]) -> dict[str, float]:
    """Dollars per 1M runs by component (keys of PRICES present in `per_run`), and the total."""
    parts = {name: per_run.get(name, 0.0) * price * 1e6 for name, price in PRICES.items()}
    return {**parts, "total": sum(parts.values())}


def stacktape_style(attempts: int) -> dict[str, float]:
    """A trigger function starting an execution of one `.sync` Task with its own Retry (Stacktape's
    documented design): the Task entered once plus one billed transition per retry, one Lambda
    invocation; no run table, no slots, no notifications."""
    return {"transitions": float(attempts), "lambda_invocations": 1.0}
