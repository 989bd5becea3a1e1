"""Name rules AWS documents that botocore's models do not carry (the rest - SageMaker job names,
Glue run ids, lengths - come with the model check)."""

from __future__ import annotations

import re

from jobline_local.contracts.core import Call, Violation

# Batch API reference, SubmitJob / SubmitServiceJob, jobName: "It can be up to 128 characters
# long. The first character must be alphanumeric, can contain uppercase and lowercase letters,
# numbers, hyphens (-), and underscores (_)." The model has no length or pattern for it.
BATCH_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
# Step Functions developer guide, quotas, "Names in Step Functions": 1-80 characters (in the
# model) and none of: whitespace, ? *, < > { } [ ], " # % \ ^ | ~ ` $ & , ; : /, control
# characters \u0000-\u001f or \u007f-\u009f (not in the model). Refused with InvalidName.
EXECUTION_NAME_FORBIDDEN = re.compile(r"[\s?*<>{}\[\]\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]")

_RULES = {
    ("batch", "SubmitJob"): "jobName",
    ("batch", "SubmitServiceJob"): "jobName",
    ("stepfunctions", "StartExecution"): "name",
}


def check(call: Call) -> list[Violation]:
    member = _RULES.get((call.service, call.operation))
    value = call.params.get(member) if member else None
    if not isinstance(value, str):
        return []
    if call.service == "batch" and not BATCH_JOB_NAME.fullmatch(value):
        constraint = (
            "Member must be up to 128 letters (uppercase and lowercase), numbers, hyphens and underscores,"
            " the first alphanumeric"
        )
    elif call.service == "stepfunctions" and EXECUTION_NAME_FORBIDDEN.search(value):
        constraint = (
            'Member must not contain whitespace, wildcard, bracket, special (" # % \\ ^ | ~ ` $ & , ; : /)'
            " or control characters"
        )
    else:
        return []
    message = f"Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    return [Violation(call.service, call.operation, member, "name", message)]
