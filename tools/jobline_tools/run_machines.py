"""The run state machines: one Standard definition per retry policy of the catalog (Job.policy_id),
written to statemachines/run-<policy>.asl.json, and their template resources.

A run is one callback Task per attempt: `Attempt` sends the attempt to the submit queue of the run's
backend API with its task token; the job's terminal state change event answers the token
(SendTaskSuccess, or SendTaskFailure with a jobline.status.AttemptError), so the attempt loop is the
Task's own Retry with the policy's interval, backoff and cap. A job with max_concurrent_runs first
takes a slot (AcquireSlot); when the job's slots are full it waits on a task token of its own
(WaitForSlot) that the run table's stream consumer answers when it hands the run a slot.

The execution writes the row only where no event can: the guard timeout (RecordTimeout) and its
own failures (RecordFailure). Billed transitions of a first-attempt success: 1 without a limit
(Attempt), 2 with one (AcquireSlot, Attempt); each further attempt 1 more (a retry is billed as a
transition, https://aws.amazon.com/step-functions/pricing/); a failed run also enters RunFailed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jobline.catalog import Catalog, Job
from jobline.errors import CatalogError, CatalogProblem
from jobline.status import ATTEMPT_ERRORS, RANK_TERMINAL, RETRIED_ATTEMPT_ERRORS, AttemptError, Reason, RunStatus

DEFINITION_DIR = "statemachines"
# How an execution fails where the run's end is its own (a Fail state cannot raise States.*).
GUARD_TIMEOUT_ERROR = "Jobline.GuardTimeout"
INTERNAL_ERROR = "Jobline.InternalError"
NAME_PREFIX = "run-"
# A state machine name has at most 80 characters ("CreateStateMachine", name): the stack name,
# "-run-" and the policy id must fit, so the id is kept short enough to leave 35 for the stack.
MAX_POLICY_ID = 40
TEMPLATE_INDENT = "  "

# Errors of the optimized DynamoDB integration that a later try can pass: throttling and 5xx,
# under both names AWS uses for a server error (Step Functions names it DynamoDB.<exception>).
DYNAMODB_TRANSIENT = [
    "DynamoDB.ProvisionedThroughputExceededException",
    "DynamoDB.ThrottlingException",
    "DynamoDB.InternalServerErrorException",
    "DynamoDB.InternalServerError",
    "DynamoDB.RequestLimitExceeded",
    "DynamoDB.AmazonDynamoDBException",
    "DynamoDB.SdkClientException",
]
LOST_RESPONSE = "DynamoDB.AmazonDynamoDBException"
# The same errors through the AWS SDK integration, which names them DynamoDb.<exception>.
SDK_DYNAMODB_TRANSIENT = [
    "DynamoDb.ProvisionedThroughputExceededException",
    "DynamoDb.ThrottlingException",
    "DynamoDb.InternalServerErrorException",
    "DynamoDb.InternalServerError",
    "DynamoDb.RequestLimitExceededException",
    # a lost response: the row may have taken this try's token; the retry writes its own over it
    "DynamoDb.SdkClientException",
]
# sqs:sendMessage failures a later try can pass. After a lost response (SdkClientException) the
# message may have been sent: the retry's message is a second one with a newer token, and the
# submitter still submits one job for the attempt and keeps the newest token (jobline.submit).
SQS_TRANSIENT = ["SQS.SdkClientException", "SQS.AmazonSQSException", "SQS.InternalError"]
TRANSIENT_RETRY = {"IntervalSeconds": 1, "BackoffRate": 2, "MaxDelaySeconds": 20, "JitterStrategy": "FULL"}


def policies(catalog: Catalog) -> dict[str, Job]:
    """Each retry policy of the catalog, by id, with the first job that has it."""
    found: dict[str, Job] = {}
    for job in catalog.jobs:
        if len(job.policy_id) > MAX_POLICY_ID:
            problem = f"retry policy id {job.policy_id!r} is over {MAX_POLICY_ID} characters: shorten backoff_rate"
            raise CatalogError(CatalogProblem(problem, job.name, "retry"))
        found.setdefault(job.policy_id, job)
    return dict(sorted(found.items()))


def file_name(policy: str) -> str:
    return f"{NAME_PREFIX}{policy}.asl.json"


def logical_id(policy: str) -> str:
    """`a3-i30-b1_5-m3600-t0-l1` -> `RunMachineA3I30B1p5M3600T0L1` (a logical id is alphanumeric)."""
    return "RunMachine" + "".join(part.capitalize() for part in policy.replace("_", "p").split("-"))


def _attempt_retriers(job: Job) -> list[dict[str, Any]]:
    retry = job.retry
    retriers = []
    if retry.attempts > 1:
        errors = [*RETRIED_ATTEMPT_ERRORS, *([AttemptError.TIMEOUT] if retry.retry_on_timeout else [])]
        retriers.append(
            {
                "ErrorEquals": [str(e) for e in errors],
                "IntervalSeconds": retry.interval_seconds,
                "BackoffRate": retry.backoff_rate,
                "MaxDelaySeconds": retry.max_delay_seconds,
                "MaxAttempts": retry.attempts - 1,
                "JitterStrategy": "NONE",
            }
        )
    # RetryCount counts these tries too: the submitter numbers attempts on the row (jobline.submit).
    retriers.append({"ErrorEquals": SQS_TRANSIENT, "MaxAttempts": 5, **TRANSIENT_RETRY})
    return retriers


def _attempt(job: Job) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Comment": "One attempt: the submitter submits it; the job's terminal state change event answers the token.",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {
            "QueueUrl.$": "$.submit_queue_url",
            "MessageBody": {
                "run_id.$": "$.run_id",
                "job.$": "$.job",
                "retry_count.$": "$$.State.RetryCount",
                "token.$": "$$.Task.Token",
                "request.$": "$.request",
            },
        },
        # Only a guard against an end never reported: the backend enforces the attempt's timeout.
        "TimeoutSecondsPath": "$.guard_timeout_seconds",
        "ResultPath": None,
        "Retry": _attempt_retriers(job),
        "Catch": [
            {"ErrorEquals": [str(e) for e in ATTEMPT_ERRORS], "ResultPath": "$.error", "Next": "RunFailed"},
            {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": "RecordTimeout"},
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordFailure"},
        ],
        "End": True,
    }


def _record(status: RunStatus, reason: Reason, then: str) -> dict[str, Any]:
    """End the row unless it already ended (an event, a stop, the reconciler came first)."""
    return {
        "Type": "Task",
        "Comment": f"No event reports this end: the execution writes {status.value} itself.",
        "Resource": "arn:aws:states:::dynamodb:updateItem",
        "Parameters": {
            "TableName": "${RunTableName}",
            "Key": {"pk": {"S.$": "States.Format('RUN#{}', $.run_id)"}},
            "UpdateExpression": (
                "SET #status = :status, #reason = :reason, #rank = :terminal, #time = :now, #ended = :now,"
                " #updated = :now"
            ),
            "ConditionExpression": "#rank < :terminal",
            "ExpressionAttributeNames": {
                "#status": "status",
                "#reason": "reason",
                "#rank": "status_rank",
                "#time": "status_time",
                "#ended": "ended_at",
                "#updated": "updated_at",
            },
            "ExpressionAttributeValues": {
                ":status": {"S": status.value},
                ":reason": {"S": reason.value},
                ":terminal": {"N": str(RANK_TERMINAL)},
                ":now": {"S.$": "$$.State.EnteredTime"},
            },
        },
        "ResultPath": None,
        "Retry": [{"ErrorEquals": DYNAMODB_TRANSIENT, "MaxAttempts": 6, **TRANSIENT_RETRY}],
        # ConditionalCheckFailed (the row had ended) or a write that kept failing: the execution
        # ends the same way; the reconciler heals a row left live.
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": then}],
        "Next": then,
    }


def _acquire(retried: list[str], catches: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Comment": "At most slot.max runs of the job hold its slot item's holders map (run id -> time).",
        "Resource": "arn:aws:states:::dynamodb:updateItem",
        "Parameters": {
            "TableName": "${RunTableName}",
            "Key": {"pk": {"S.$": "States.Format('SLOT#{}', $.slot.job)"}},
            "UpdateExpression": "SET #holders.#run = :now",
            # Taking it again is a no-op (a retried try, or the hand-off that put the run in already).
            "ConditionExpression": (
                "attribute_not_exists(#holders) OR size(#holders) < :max OR attribute_exists(#holders.#run)"
            ),
            "ExpressionAttributeNames": {"#holders": "holders", "#run.$": "$.run_id"},
            "ExpressionAttributeValues": {
                ":now": {"S.$": "$$.State.EnteredTime"},
                ":max": {"N.$": "States.Format('{}', $.slot.max)"},
            },
        },
        "ResultPath": None,
        "Retry": [{"ErrorEquals": retried, "MaxAttempts": 6, **TRANSIENT_RETRY}],
        "Catch": [
            {"ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"], "ResultPath": None, "Next": "WaitForSlot"},
            *catches,
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordFailure"},
        ],
        "Next": "Attempt",
    }


def _slot_states() -> dict[str, Any]:
    failed = {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordFailure"}
    return {
        # DynamoDB refuses a SET under a map that does not exist (ValidationException): the job's
        # first run opens the map, then takes its slot once more, where that error is a failure.
        # A lost response (AmazonDynamoDBException) takes the same way, where it is retried: no
        # retrier of the first acquire could tell it from the refusal.
        "AcquireSlot": _acquire(
            [e for e in DYNAMODB_TRANSIENT if e != LOST_RESPONSE],
            [{"ErrorEquals": ["DynamoDB.ValidationException", LOST_RESPONSE], "ResultPath": None, "Next": "OpenSlot"}],
        ),
        "OpenSlot": {
            "Type": "Task",
            "Comment": "The job's first run gives its slot item an empty holders map (a no-op once it has one).",
            "Resource": "arn:aws:states:::dynamodb:updateItem",
            "Parameters": {
                "TableName": "${RunTableName}",
                "Key": {"pk": {"S.$": "States.Format('SLOT#{}', $.slot.job)"}},
                "UpdateExpression": "SET #holders = if_not_exists(#holders, :empty)",
                "ExpressionAttributeNames": {"#holders": "holders"},
                "ExpressionAttributeValues": {":empty": {"M": {}}},
            },
            "ResultPath": None,
            "Retry": [{"ErrorEquals": DYNAMODB_TRANSIENT, "MaxAttempts": 6, **TRANSIENT_RETRY}],
            "Catch": [failed],
            "Next": "AcquireOpenedSlot",
        },
        "AcquireOpenedSlot": _acquire(DYNAMODB_TRANSIENT, []),
        "WaitForSlot": {
            "Type": "Task",
            "Comment": (
                "Register on the run's own row and wait, without transitions: whoever frees a slot puts the"
                " oldest waiter in holders and answers its slot_token. An AWS SDK integration: the optimized"
                " DynamoDB one has no .waitForTaskToken."
            ),
            "Resource": "arn:aws:states:::aws-sdk:dynamodb:updateItem.waitForTaskToken",
            "Parameters": {
                "TableName": "${RunTableName}",
                "Key": {"pk": {"S.$": "States.Format('RUN#{}', $.run_id)"}},
                "UpdateExpression": "SET #token = :token, #waiting = :waiting, #reason = :reason",
                "ConditionExpression": "#rank < :terminal",
                "ExpressionAttributeNames": {
                    "#token": "slot_token",
                    "#waiting": "waiting_for",
                    "#reason": "reason",
                    "#rank": "status_rank",
                },
                "ExpressionAttributeValues": {
                    ":token": {"S.$": "$$.Task.Token"},
                    ":waiting": {"S.$": "States.Format('slot#{}', $.slot.job)"},
                    ":reason": {"S": Reason.WAITING_FOR_SLOT.value},
                    ":terminal": {"N": str(RANK_TERMINAL)},
                },
            },
            "ResultPath": None,
            "Retry": [{"ErrorEquals": SDK_DYNAMODB_TRANSIENT, "MaxAttempts": 6, **TRANSIENT_RETRY}],
            "Catch": [
                # The run ended while it waited to register (stopped): nothing to run.
                {
                    "ErrorEquals": ["DynamoDb.ConditionalCheckFailedException"],
                    "ResultPath": "$.error",
                    "Next": "RunFailed",
                },
                failed,
            ],
            "Next": "Attempt",
        },
    }


def definition(job: Job) -> dict[str, Any]:
    """The definition of `job`'s retry policy; `${RunTableName}` is a DefinitionSubstitution."""
    limited = job.max_concurrent_runs is not None
    retry = job.retry
    comment = (
        f"jobline run, policy {job.policy_id}: {retry.attempts} attempts, retried after"
        f" {retry.interval_seconds} s x{retry.backoff_rate:g} (at most {retry.max_delay_seconds} s),"
        f" timeouts {'retried' if retry.retry_on_timeout else 'not retried'},"
        f" {'a concurrency limit' if limited else 'no concurrency limit'}. Input: jobline.runs; generated by"
        " `make generate` (jobline_tools.run_machines), do not edit."
    )
    states: dict[str, Any] = {
        **(_slot_states() if limited else {}),
        "Attempt": _attempt(job),
        "RecordTimeout": _record(RunStatus.TIMEOUT, Reason.TIMEOUT, "RunTimedOut"),
        "RecordFailure": _record(RunStatus.FAILED, Reason.INTERNAL_ERROR, "RunBroke"),
        # The attempt's own error (a Jobline.* one, or DynamoDb.ConditionalCheckFailedException
        # from WaitForSlot): CausePath would fail the state where an error has no cause.
        "RunFailed": {"Type": "Fail", "ErrorPath": "$.error.Error"},
        # A Fail state cannot raise a States.* name: these two say what happened in ours.
        "RunTimedOut": {
            "Type": "Fail",
            "Error": GUARD_TIMEOUT_ERROR,
            "Cause": "No end of the attempt was reported within guard_timeout_seconds; the run is TIMEOUT.",
        },
        "RunBroke": {
            "Type": "Fail",
            "Error": INTERNAL_ERROR,
            "Cause": "The execution failed (see its history); the run is FAILED, InternalError.",
        },
    }
    return {"Comment": comment, "StartAt": "AcquireSlot" if limited else "Attempt", "States": states}


def definition_text(job: Job) -> str:
    return json.dumps(definition(job), indent=2, ensure_ascii=True) + "\n"


def rendered(catalog: Catalog) -> dict[str, str]:
    """statemachines/<file> -> its text, for every policy of the catalog."""
    return {file_name(policy): definition_text(job) for policy, job in policies(catalog).items()}


def machine_name(policy: str) -> str:
    """The state machine's name, under the stack's prefix (Settings.state_machine_prefix)."""
    return f"${{AWS::StackName}}-{NAME_PREFIX}{policy}"


def render_resources(catalog: Catalog, *, inline: bool = False) -> list[list[str]]:
    """One AWS::Serverless::StateMachine per policy, sharing RunStateMachineRole and its log group.
    `inline` puts each definition in the template (a catalog other than the packaged one, whose
    definition files are not in statemachines/: the local stack's --catalog)."""
    blocks = []
    for policy, job in policies(catalog).items():
        definition_lines = (
            [f"    Definition: {json.dumps(definition(job), ensure_ascii=True)}"]
            if inline
            else [f"    DefinitionUri: {DEFINITION_DIR}/{file_name(policy)}"]
        )
        lines = [
            f"{logical_id(policy)}:",
            "  Type: AWS::Serverless::StateMachine",
            "  Properties:",
            f'    Name: !Sub "{machine_name(policy)}"',
            "    Type: STANDARD",
            *definition_lines,
            "    DefinitionSubstitutions:",
            "      RunTableName: !Ref RunTable",
            "    Role: !GetAtt RunStateMachineRole.Arn",
            "    Logging:",
            "      Level: ERROR",
            "      IncludeExecutionData: false",
            "      Destinations:",
            "        - CloudWatchLogsLogGroup:",
            "            LogGroupArn: !GetAtt RunStateMachineLogGroup.Arn",
            "    Tracing:",
            "      Enabled: true",
        ]
        blocks.append([TEMPLATE_INDENT + line for line in lines])
    return blocks


def definition_drift(directory: Path, catalog: Catalog) -> list[str]:
    """What differs between `directory` and a fresh render: files to write or to remove."""
    wanted = rendered(catalog)
    present = {path.name for path in directory.glob(f"{NAME_PREFIX}*.asl.json")}
    drift = [f"{directory.name}/{name} is stale (no job has its policy)" for name in sorted(present - set(wanted))]
    for name, text in wanted.items():
        path = directory / name
        if not path.exists():
            drift.append(f"{directory.name}/{name} is missing")
        elif path.read_text(encoding="utf-8") != text:
            drift.append(f"{directory.name}/{name} is out of date")
    return drift


def write_definitions(directory: Path, catalog: Catalog) -> list[str]:
    """Write every policy's definition and remove the stale ones; says what it did."""
    wanted = rendered(catalog)
    directory.mkdir(exist_ok=True)
    done = []
    for path in sorted(directory.glob(f"{NAME_PREFIX}*.asl.json")):
        if path.name not in wanted:
            path.unlink()
            done.append(f"removed {directory.name}/{path.name}")
    for name, text in wanted.items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            done.append(f"wrote {directory.name}/{name}")
    return done
