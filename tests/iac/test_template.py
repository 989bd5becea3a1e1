"""template.yaml keeps its promises: private encrypted storage, dead letters everywhere, narrow IAM."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from jobline.catalog import load_catalog
from jobline.settings import PACKAGED_CATALOG, Settings
from jobline_tools import run_machines
from tests.cfn import ROOT, STATEMACHINES, resource, template

FUNCTIONS = {
    "S3TriggerFunction": "s3_trigger",
    "BusTriggerFunction": "bus_trigger",
    "ScheduleTriggerFunction": "schedule_trigger",
    "SqsTriggerFunction": "sqs_trigger",
    "StateChangeFunction": "state_change",
    "SubmitterFunction": "submitter",
    "FanoutFunction": "fanout",
    "FanoutWorkerFunction": "fanout_worker",
}
# Allow statements may use Resource "*" only for actions without resource-level permissions.
# Every run state machine (one per retry policy), as the functions' grants name them.
RUN_MACHINES = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-run-*"
RUN_MACHINE_GRANT = {str({"Fn::Sub": RUN_MACHINES})}
SUBMIT_QUEUES = ["SubmitBatchJobQueue", "SubmitServiceJobQueue", "CreateProcessingJobQueue", "StartJobRunQueue"]
ACTIONS_WITHOUT_RESOURCES = {
    "batch:DescribeJobs",
    "batch:DescribeServiceJob",
    "batch:ListJobs",
    "batch:ListServiceJobs",
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
}


def _resources(type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template()["Resources"].items() if v["Type"] == type_}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _refs(value: Any) -> set[str]:
    """Every Ref target inside `value` (through Fn::If branches and lists)."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return {value["Ref"]}
        return set().union(*(_refs(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value)) if value else set()
    return set()


def _statements(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM statement in the template: policy documents, SAM Policies, bucket/queue policies."""
    if isinstance(node, dict):
        if isinstance(node.get("Statement"), list):
            for i, statement in enumerate(node["Statement"]):
                yield f"{path}/Statement[{i}]", statement
        for key, value in node.items():
            if key != "Statement":
                yield from _statements(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _statements(value, f"{path}[{i}]")


def _function_events(event_type: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for function_id, function in _resources("AWS::Serverless::Function").items():
        for event_id, event in function["Properties"].get("Events", {}).items():
            if event["Type"] == event_type:
                yield function_id, event_id, event["Properties"]


# ---------------------------------------------------------------- storage


def _bucket_policy(bucket_id: str) -> dict[str, Any]:
    policies = [
        p["Properties"]["PolicyDocument"]
        for p in _resources("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    assert len(policies) == 1, f"{bucket_id} needs exactly one bucket policy"
    return policies[0]


def test_there_are_the_two_buckets() -> None:
    assert set(_resources("AWS::S3::Bucket")) == {"InputBucket", "RunDataBucket"}


@pytest.mark.parametrize("bucket_id", ["InputBucket", "RunDataBucket"])
def test_every_bucket_is_private_encrypted_and_tls_only(bucket_id: str) -> None:
    props = resource(bucket_id)["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rules
    assert all(
        r["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms", "aws:kms:dsse"} for r in rules
    )
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}

    tls_denies = [
        s
        for s in _bucket_policy(bucket_id)["Statement"]
        if s["Effect"] == "Deny"
        and s["Principal"] in ("*", {"AWS": "*"})
        and str(s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")).lower() == "false"
    ]
    assert tls_denies, f"{bucket_id} must deny requests without TLS"
    (deny,) = tls_denies
    assert "s3:*" in _as_list(deny["Action"])
    covered = _as_list(deny["Resource"])
    assert {"Fn::GetAtt": [bucket_id, "Arn"]} in covered
    assert {"Fn::Sub": f"${{{bucket_id}.Arn}}/*"} in covered


def test_input_bucket_sends_eventbridge_notifications() -> None:
    config = resource("InputBucket")["Properties"]["NotificationConfiguration"]
    assert config["EventBridgeConfiguration"]["EventBridgeEnabled"] is True


def test_run_data_expires_after_the_run_retention() -> None:
    rules = resource("RunDataBucket")["Properties"]["LifecycleConfiguration"]["Rules"]
    assert any(
        r["Status"] == "Enabled" and r.get("ExpirationInDays") == {"Ref": "RunRetentionDays"} and "Prefix" not in r
        for r in rules
    )


def test_run_table() -> None:
    table = resource("RunTable")
    props = table["Properties"]
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    indexes = {
        gsi["IndexName"]: (
            [(k["AttributeName"], k["KeyType"]) for k in gsi["KeySchema"]],
            gsi["Projection"]["ProjectionType"],
        )
        for gsi in props["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        "by-job-keys": ([("job", "HASH"), ("created_at", "RANGE")], "KEYS_ONLY"),
        "by-status-keys": ([("status", "HASH"), ("created_at", "RANGE")], "KEYS_ONLY"),
        "by-created-keys": ([("record_type", "HASH"), ("created_at", "RANGE")], "KEYS_ONLY"),
        "by-fanout": ([("fanout_id", "HASH"), ("fanout_line", "RANGE")], "KEYS_ONLY"),
        "by-waiting": ([("waiting_for", "HASH"), ("created_at", "RANGE")], "INCLUDE"),
    }
    (waiting,) = (gsi for gsi in props["GlobalSecondaryIndexes"] if gsi["IndexName"] == "by-waiting")
    assert waiting["Projection"]["NonKeyAttributes"] == ["slot_token"]  # what wakes the waiter (jobline.slots)
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert types == {
        **dict.fromkeys(["pk", "job", "status", "record_type", "created_at", "fanout_id", "waiting_for"], "S"),
        "fanout_line": "N",
    }


def test_every_queue_is_encrypted() -> None:
    queues = _resources("AWS::SQS::Queue")
    assert set(queues) == {
        "TriggerQueue",
        "TriggerDeadLetterQueue",
        "EventDeadLetterQueue",
        "NotificationRedriveQueue",
        "NotificationDeadLetterQueue",
        *SUBMIT_QUEUES,
        "SubmitDeadLetterQueue",
        "S3IntakeQueue",
        "BusIntakeQueue",
        "IntakeDeadLetterQueue",
        "FanoutRequestQueue",
        "FanoutQueue",
        "FanoutDeadLetterQueue",
    }
    for queue_id, queue in queues.items():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props, queue_id


# ---------------------------------------------------------------- triggers and dead letters


def _function_timeout(function_id: str) -> int:
    props = resource(function_id)["Properties"]
    return int(props.get("Timeout", template()["Globals"]["Function"]["Timeout"]))


def test_trigger_queue_redrives_to_its_dlq_and_outlives_the_function() -> None:
    props = resource("TriggerQueue")["Properties"]
    assert props["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["TriggerDeadLetterQueue", "Arn"]}
    assert int(props["RedrivePolicy"]["maxReceiveCount"]) >= 5
    assert int(props["VisibilityTimeout"]) >= 6 * _function_timeout("SqsTriggerFunction")


def test_sqs_trigger_reports_partial_batch_failures() -> None:
    (event,) = [e for f, _, e in _function_events("SQS") if f == "SqsTriggerFunction"]  # exactly one SQS event source
    assert event["Queue"] == {"Fn::GetAtt": ["TriggerQueue", "Arn"]}
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["BatchSize"] == 10


def test_every_eventbridge_rule_event_has_a_dlq_and_a_retry_policy() -> None:
    events = list(_function_events("EventBridgeRule"))
    assert {f for f, _, _ in events} == {"StateChangeFunction"}
    for function_id, event_id, props in events:
        where = f"{function_id}.{event_id}"
        assert props.get("DeadLetterConfig") == {"Arn": {"Fn::GetAtt": ["EventDeadLetterQueue", "Arn"]}}, where
        retry = props.get("RetryPolicy") or {}
        assert {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"} <= set(retry), where


RULE_TARGETS = {"s3": "S3IntakeQueue", "bus": "BusIntakeQueue", "manifest": "FanoutRequestQueue"}
RULE_PREFIXES = {"s3": "S3Rule", "bus": "BusRule", "manifest": "ManifestRule"}


def _trigger_rules() -> dict[str, dict[str, Any]]:
    """The generated S3, bus and manifest trigger rules (jobline_tools.codegen)."""
    return {k: v for k, v in _resources("AWS::Events::Rule").items() if k.startswith(tuple(RULE_PREFIXES.values()))}


def _kind(rule_id: str) -> str:
    return next(kind for kind, prefix in RULE_PREFIXES.items() if rule_id.startswith(prefix))


def _rule_arn(rule: dict[str, Any], token: str) -> str:
    """The rule's ARN with the stack token (and the pseudo parameters) as fixed strings."""
    name_template, variables = rule["Properties"]["Name"]["Fn::Sub"]
    assert variables == {"StackToken": STACK_TOKEN}, "the rule's name must carry the stack token"
    name = name_template.replace("${StackToken}", token)
    bus = "JOBBUS/" if rule["Properties"].get("EventBusName") == {"Ref": "JobBus"} else ""
    return f"arn:PARTITION:events:REGION:ACCOUNT:rule/{bus}{name}"


def _arn_pattern(sub: dict[str, Any], token: str) -> str:
    text, variables = sub["Fn::Sub"]
    assert variables == {"StackToken": STACK_TOKEN}
    for name, value in {
        "${StackToken}": token,
        "${AWS::Partition}": "PARTITION",
        "${AWS::Region}": "REGION",
        "${AWS::AccountId}": "ACCOUNT",
        "${JobBus}": "JOBBUS",
    }.items():
        text = text.replace(name, value)
    return text


STACK_TOKEN = {
    "Fn::Select": [0, {"Fn::Split": ["-", {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}]}]
}


def test_every_trigger_rule_has_a_dlq_a_retry_policy_and_names_its_job() -> None:
    rules = _trigger_rules()
    assert {_kind(k) for k in rules} == set(RULE_TARGETS), "the packaged catalog has S3, bus and manifest triggers"
    for rule_id, rule in rules.items():
        props = rule["Properties"]
        kind = _kind(rule_id)
        (target,) = props["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": [RULE_TARGETS[kind], "Arn"]}, rule_id
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["EventDeadLetterQueue", "Arn"]}}, rule_id
        assert {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"} <= set(target["RetryPolicy"]), rule_id
        template_input = target["InputTransformer"]["InputTemplate"]
        assert template_input.endswith('"event": <aws.events.event.json>}'), rule_id
        job = json.loads(template_input.replace("<aws.events.event.json>", "null"))["job"]
        assert f"-{kind}-{job}-" in props["Name"]["Fn::Sub"][0], rule_id
        assert props["State"] == "ENABLED"
        if kind in ("s3", "manifest"):
            assert "EventBusName" not in props  # the default bus, where S3 sends its events
            assert props["EventPattern"]["source"] == ["aws.s3"]
            assert props["EventPattern"]["detail-type"] == ["Object Created"]
            assert props["EventPattern"]["detail"]["bucket"]["name"] == [{"Ref": "InputBucket"}]
        else:
            assert props["EventBusName"] == {"Ref": "JobBus"}


def test_only_the_trigger_rules_may_send_to_their_queues_and_use_the_dlq() -> None:
    """One wildcard statement per target queue (SQS's 8 KB queue policy), held to this stack's rule
    names of that kind: every generated rule fits it, other stacks' and other kinds' do not."""
    policy = resource("EventDeadLetterQueuePolicy")["Properties"]["PolicyDocument"]
    (dead_letters,) = [s for s in policy["Statement"] if s["Sid"] == "TriggerRuleDeadLetters"]
    assert dead_letters["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    dlq_patterns = [_arn_pattern(sub, "T0KEN") for sub in dead_letters["Condition"]["ArnLike"]["aws:SourceArn"]]
    targets = resource("RuleTargetQueuesPolicy")["Properties"]
    assert targets["Queues"] == [{"Ref": q} for q in RULE_TARGETS.values()]
    statements = {s["Resource"]["Fn::GetAtt"][0]: s for s in targets["PolicyDocument"]["Statement"]}
    assert set(statements) == set(RULE_TARGETS.values())
    for kind, queue in RULE_TARGETS.items():
        statement = statements[queue]
        assert (statement["Principal"], statement["Action"]) == ({"Service": "events.amazonaws.com"}, "sqs:SendMessage")
        assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
        allowed = _arn_pattern(statement["Condition"]["ArnLike"]["aws:SourceArn"], "T0KEN")
        rules = [r for k, r in _trigger_rules().items() if _kind(k) == kind]
        assert rules
        for rule in rules:
            (target,) = rule["Properties"]["Targets"]
            assert target["Arn"] == {"Fn::GetAtt": [queue, "Arn"]}
            assert fnmatch.fnmatchcase(_rule_arn(rule, "T0KEN"), allowed)
            assert not fnmatch.fnmatchcase(_rule_arn(rule, "OTHER"), allowed), "another stack's rule"
            assert [p for p in dlq_patterns if fnmatch.fnmatchcase(_rule_arn(rule, "T0KEN"), p)]
            for other_kind, other_queue in RULE_TARGETS.items():
                if other_kind != kind:
                    other = _arn_pattern(statements[other_queue]["Condition"]["ArnLike"]["aws:SourceArn"], "T0KEN")
                    assert not fnmatch.fnmatchcase(_rule_arn(rule, "T0KEN"), other), f"{kind} rule in {other_queue}"
    assert not _resources("AWS::Lambda::Permission"), "rules invoke no function: they send to queues"


@pytest.mark.parametrize(
    ("function_id", "queue"), [("S3TriggerFunction", "S3IntakeQueue"), ("BusTriggerFunction", "BusIntakeQueue")]
)
def test_the_intake_queues_pace_the_trigger_functions(function_id: str, queue: str) -> None:
    (event,) = resource(function_id)["Properties"]["Events"].values()
    props = event["Properties"]
    assert event["Type"] == "SQS"
    assert props["Queue"] == {"Fn::GetAtt": [queue, "Arn"]}
    assert (props["BatchSize"], props["FunctionResponseTypes"]) == (10, ["ReportBatchItemFailures"])
    assert props["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "IntakeConcurrency"}}
    queue_props = resource(queue)["Properties"]
    assert queue_props["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["IntakeDeadLetterQueue", "Arn"]}
    assert int(queue_props["VisibilityTimeout"]) >= 6 * _function_timeout(function_id)
    # A delivery handed back unstarted (no time left in its invocation) counts a receive.
    assert int(queue_props["RedrivePolicy"]["maxReceiveCount"]) >= 10
    assert template()["Parameters"]["IntakeConcurrency"]["Default"] == 5


def test_the_fanout_queues_feed_their_functions() -> None:
    reader = resource("FanoutFunction")["Properties"]
    (requests,) = reader["Events"].values()
    assert requests["Properties"]["Queue"] == {"Fn::GetAtt": ["FanoutRequestQueue", "Arn"]}
    assert requests["Properties"]["BatchSize"] == 1
    assert int(resource("FanoutRequestQueue")["Properties"]["VisibilityTimeout"]) >= 6 * _function_timeout(
        "FanoutFunction"
    )
    assert int(reader["Environment"]["Variables"]["FANOUT_LEASE_SECONDS"]) > _function_timeout("FanoutFunction")
    worker = resource("FanoutWorkerFunction")["Properties"]
    (items,) = worker["Events"].values()
    assert items["Properties"]["Queue"] == {"Fn::GetAtt": ["FanoutQueue", "Arn"]}
    assert items["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert items["Properties"]["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "IntakeConcurrency"}}
    assert worker["Policies"] == [{"Ref": "TriggerFunctionPolicy"}]
    assert int(resource("FanoutQueue")["Properties"]["VisibilityTimeout"]) >= 6 * _function_timeout(
        "FanoutWorkerFunction"
    )
    # An item handed back for time (ItemDeferred) counts a receive.
    assert int(resource("FanoutQueue")["Properties"]["RedrivePolicy"]["maxReceiveCount"]) >= 10


def test_the_event_dlq_admits_exactly_the_sam_rules() -> None:
    """SAM names each rule <function><event>; the queue policy must follow renames."""
    policies = [
        p["Properties"]["PolicyDocument"]
        for p in _resources("AWS::SQS::QueuePolicy").values()
        if {"Ref": "EventDeadLetterQueue"} in p["Properties"]["Queues"]
    ]
    (policy,) = policies
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    source_arns = by_sid["EventBridgeRuleDeadLetters"]["Condition"]["ArnEquals"]["aws:SourceArn"]
    expected = [{"Fn::GetAtt": [f + e, "Arn"]} for f, e, _ in _function_events("EventBridgeRule")]
    assert sorted(map(str, source_arns)) == sorted(map(str, expected))
    for statement in policy["Statement"]:
        assert statement["Action"] == "sqs:SendMessage"
        assert "aws:SourceAccount" in statement["Condition"]["StringEquals"]
    assert {s["Principal"]["Service"] for s in policy["Statement"]} == {
        "events.amazonaws.com",
        "scheduler.amazonaws.com",
    }


def test_async_function_failures_land_in_the_event_dlq() -> None:
    config = template()["Globals"]["Function"]["EventInvokeConfig"]
    assert config["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["EventDeadLetterQueue", "Arn"]},
    }


def test_every_schedule_has_a_dlq_and_a_retry_policy() -> None:
    schedules = _resources("AWS::Scheduler::Schedule")
    assert schedules, "the packaged catalog declares at least one schedule"
    for schedule_id, schedule in schedules.items():
        target = schedule["Properties"]["Target"]
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["EventDeadLetterQueue", "Arn"]}}, schedule_id
        assert {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"} <= set(target["RetryPolicy"]), schedule_id
        assert target["Arn"] == {"Fn::GetAtt": ["ScheduleTriggerFunction", "Arn"]}
        assert schedule["Properties"]["GroupName"] == {"Ref": "JobSchedulesGroup"}


def test_state_change_rules_filter_joblines_job_queues() -> None:
    rules = {e: p for f, e, p in _function_events("EventBridgeRule") if f == "StateChangeFunction"}
    batch, service = rules["BatchJobStateChange"], rules["ServiceJobStateChange"]
    for props in (batch, service):
        assert "EventBusName" not in props
        assert props["Pattern"]["source"] == ["aws.batch"]
    assert batch["Pattern"]["detail-type"] == ["Batch Job State Change"]
    job_queue = batch["Pattern"]["detail"]["jobQueue"]
    assert _refs(job_queue) == {"OnDemandJobQueue", "SpotJobQueue", "GpuJobQueue", "ExistingJobQueueArn"}
    assert "Fn::If" in job_queue  # every branch is a list of jobline's queues, never a wildcard
    assert service["Pattern"]["detail-type"] == ["Batch Service Job State Change"]
    assert service["Pattern"]["detail"]["jobQueue"] == [{"Ref": "TrainingJobQueue"}]
    assert rules["SageMakerJobStateChange"]["Pattern"]["detail-type"] == [
        "SageMaker Processing Job State Change",
        "SageMaker Training Job State Change",
    ]
    assert rules["GlueJobStateChange"]["Pattern"]["detail-type"] == ["Glue Job State Change", "Glue Job Run Status"]


# ---------------------------------------------------------------- IAM


def test_no_allow_statement_has_a_wildcard_action() -> None:
    statements = list(_statements(template()))
    assert len(statements) > 20
    for where, statement in statements:
        assert "NotAction" not in statement, where
        actions = _as_list(statement["Action"])
        assert all(isinstance(a, str) and a for a in actions), where
        wildcards = [a for a in actions if "*" in a or "?" in a]
        if statement["Effect"] == "Allow":
            assert not wildcards, f"{where}: {wildcards}"
        else:
            # A Deny takes rights away; only the TLS-only bucket deny may use a wildcard.
            assert not wildcards or "aws:SecureTransport" in str(statement.get("Condition")), where


def test_resource_star_only_for_actions_without_resource_permissions() -> None:
    for where, statement in _statements(template()):
        if statement["Effect"] != "Allow":
            continue
        if "*" in _as_list(statement.get("Resource")):
            extra = set(_as_list(statement["Action"])) - ACTIONS_WITHOUT_RESOURCES
            assert not extra, f"{where}: {sorted(extra)} can be scoped to resources"


def _policy_actions(function_id: str) -> dict[str, set[str]]:
    """Action -> the resources it is allowed on, from a SAM resource's inline statements."""
    allowed: dict[str, set[str]] = {}
    for _, statement in _statements(resource(function_id)["Properties"].get("Policies", [])):
        for action in _as_list(statement["Action"]):
            allowed.setdefault(action, set()).update(map(str, _as_list(statement["Resource"])))
    return allowed


TRIGGER_FUNCTIONS = ["S3TriggerFunction", "BusTriggerFunction", "ScheduleTriggerFunction", "SqsTriggerFunction"]


@pytest.mark.parametrize("function_id", TRIGGER_FUNCTIONS)
def test_trigger_functions_share_one_managed_policy_and_only_it(function_id: str) -> None:
    assert resource(function_id)["Properties"]["Policies"] == [{"Ref": "TriggerFunctionPolicy"}]


def test_the_trigger_policy_grants_exactly_what_starting_a_run_needs() -> None:
    policy = resource("TriggerFunctionPolicy")
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    allowed: dict[str, set[str]] = {}
    for _, statement in _statements(policy["Properties"]["PolicyDocument"]):
        assert statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"]):
            allowed.setdefault(action, set()).update(map(str, _as_list(statement["Resource"])))
    table = str({"Fn::GetAtt": ["RunTable", "Arn"]})
    assert allowed == {
        "dynamodb:PutItem": {table},
        "dynamodb:GetItem": {table},
        "dynamodb:UpdateItem": {table},
        "states:StartExecution": {str({"Fn::Sub": RUN_MACHINES})},
        "sqs:SendMessage": {
            str({"Fn::GetAtt": ["EventDeadLetterQueue", "Arn"]}),
            str({"Fn::GetAtt": ["FanoutRequestQueue", "Arn"]}),
        },
        "s3:PutObject": {str({"Fn::Sub": "${RunDataBucket.Arn}/trigger-events/*"})},
        "s3:DeleteObject": {str({"Fn::Sub": "${RunDataBucket.Arn}/trigger-events/*"})},
    }


def test_state_change_function_only_touches_the_run_table_glue_runs_and_its_executions() -> None:
    allowed = _policy_actions("StateChangeFunction")
    table = {str({"Fn::GetAtt": ["RunTable", "Arn"]})}
    assert allowed == {
        "dynamodb:GetItem": table,
        "dynamodb:UpdateItem": table,
        "glue:GetJobRun": {str({"Fn::Sub": "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:job/*"})},
        "states:SendTaskSuccess": RUN_MACHINE_GRANT,
        "states:SendTaskFailure": RUN_MACHINE_GRANT,
    }


def test_the_run_stream_function_only_touches_slots_waiters_and_their_executions() -> None:
    table = str({"Fn::GetAtt": ["RunTable", "Arn"]})
    stream = {str({"Fn::GetAtt": ["RunTable", "StreamArn"]})}
    assert _policy_actions("RunStreamFunction") == {
        **dict.fromkeys(
            ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"],
            stream,
        ),
        "dynamodb:GetItem": {table},
        "dynamodb:UpdateItem": {table},
        "dynamodb:Query": {str({"Fn::Sub": "${RunTable.Arn}/index/by-waiting"})},
        "states:SendTaskSuccess": RUN_MACHINE_GRANT,
        "sqs:SendMessage": {str({"Fn::GetAtt": ["EventDeadLetterQueue", "Arn"]})},
    }


TERMINATE = {"batch:TerminateJob": "job", "batch:TerminateServiceJob": "service-job"}


def test_terminating_jobs_is_scoped_to_joblines_tagged_jobs() -> None:
    """TerminateJob and TerminateServiceJob take the job (service-job) resource and the
    aws:ResourceTag condition key (Service Authorization Reference, AWS Batch)."""
    found = 0
    for where, statement in _statements(template()):
        actions = set(_as_list(statement["Action"])) & set(TERMINATE)
        if statement["Effect"] != "Allow" or not actions:
            continue
        found += len(actions)
        arn = "arn:${AWS::Partition}:batch:${AWS::Region}:${AWS::AccountId}:"
        allowed = {str({"Fn::Sub": f"{arn}{TERMINATE[a]}/*"}) for a in actions}
        assert {str(r) for r in _as_list(statement["Resource"])} == allowed, where
        assert statement["Condition"] == {"Null": {"aws:ResourceTag/jobline:run-id": "false"}}, where
    assert found == 2, "the API function terminates both kinds of job"


def test_metrics_on_star_are_held_to_sagemakers_namespaces() -> None:
    (statement,) = [s for _, s in _statements(template()) if "cloudwatch:PutMetricData" in _as_list(s.get("Action"))]
    assert statement["Resource"] == "*"
    assert statement["Condition"] == {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}


def test_every_statement_on_star_is_listed_in_the_design_doc() -> None:
    doc = (ROOT / "docs" / "DESIGN.md").read_text()
    iam = doc.split("\n## IAM", 1)[1].split("\n## ", 1)[0]
    for where, statement in _statements(template()):
        if statement["Effect"] == "Allow" and "*" in _as_list(statement.get("Resource")):
            for action in _as_list(statement["Action"]):
                assert f"`{action}`" in iam, f"{where}: {action} on * is not listed under IAM"


# ---------------------------------------------------------------- concurrency

CONCURRENCY = {
    "S3TriggerFunction": "TriggerConcurrency",
    "BusTriggerFunction": "TriggerConcurrency",
    "ScheduleTriggerFunction": "TriggerConcurrency",
    "SqsTriggerFunction": "TriggerConcurrency",
    "StateChangeFunction": "StateChangeConcurrency",
    "ReconcilerFunction": "ReconcilerConcurrency",
    "ApiFunction": "ApiConcurrency",
    "NotifyFunction": "NotifyConcurrency",
    "RunStreamFunction": "RunStreamConcurrency",
    "SubmitterFunction": "SubmitterConcurrency",
    "FanoutFunction": "FanoutConcurrency",
    "FanoutWorkerFunction": "IntakeConcurrency",
}


def test_every_function_has_a_reserved_concurrency_parameter() -> None:
    assert set(CONCURRENCY) == set(_resources("AWS::Serverless::Function"))
    parameters = template()["Parameters"]
    total = 0
    for function_id, parameter in CONCURRENCY.items():
        reserved = resource(function_id)["Properties"]["ReservedConcurrentExecutions"]
        assert reserved == {"Fn::If": ["ReserveFunctionConcurrency", {"Ref": parameter}, {"Ref": "AWS::NoValue"}]}
        spec = parameters[parameter]
        assert spec["Type"] == "Number"
        # 0 would throttle every invocation: the switch, not a zero, turns reservation off.
        assert 1 <= spec["MinValue"] <= spec["Default"] <= spec["MaxValue"] <= 1000
        total += spec["Default"]
    # Lambda keeps 100 unreserved: the defaults fit an account at the default 1,000 limit.
    assert total <= 100
    assert parameters["ReserveConcurrency"]["Default"] == "true"
    assert template()["Conditions"]["ReserveFunctionConcurrency"] == {
        "Fn::Equals": [{"Ref": "ReserveConcurrency"}, "true"]
    }


def test_the_sqs_event_source_never_outruns_the_reserved_concurrency() -> None:
    (event,) = resource("SqsTriggerFunction")["Properties"]["Events"].values()
    assert event["Properties"]["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "TriggerConcurrency"}}
    assert template()["Parameters"]["TriggerConcurrency"]["MinValue"] >= 2  # MaximumConcurrency's minimum


def test_the_readme_documents_every_concurrency_parameter() -> None:
    readme = (ROOT / "README.md").read_text()
    for parameter in {"ReserveConcurrency", *CONCURRENCY.values()}:
        assert f"`{parameter}`" in readme, parameter


def test_sagemaker_role_is_passed_only_to_sagemaker() -> None:
    passes = [s for _, s in _statements(template()) if "iam:PassRole" in _as_list(s.get("Action"))]
    for statement in passes:
        assert statement["Resource"] == {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}
        assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    role = resource("RunStateMachineRole")["Properties"]
    assert "iam:PassRole" not in str(role), "the submitter passes roles; the run state machines submit nothing"


def _run_machine_role_actions() -> dict[str, set[str]]:
    allowed: dict[str, set[str]] = {}
    for _, statement in _statements(resource("RunStateMachineRole")["Properties"]["Policies"]):
        assert statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"]):
            allowed.setdefault(action, set()).update(map(str, _as_list(statement["Resource"])))
    return allowed


def test_the_run_machines_role_sends_attempts_writes_the_run_table_and_logs_only() -> None:
    """Least privilege: Attempt's sqs:sendMessage to the submit queues, the slot and failure
    writes (dynamodb:UpdateItem), and what logging and X-Ray tracing need."""
    allowed = _run_machine_role_actions()
    star = {"*"}
    assert allowed == {
        "sqs:SendMessage": {str({"Fn::GetAtt": [queue, "Arn"]}) for queue in SUBMIT_QUEUES},
        "dynamodb:UpdateItem": {str({"Fn::GetAtt": ["RunTable", "Arn"]})},
        **{action: star for action in ACTIONS_WITHOUT_RESOURCES if action.startswith(("logs:", "xray:"))},
    }
    (trust,) = resource("RunStateMachineRole")["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "states.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_scheduler_role_trusts_only_this_account() -> None:
    (statement,) = resource("SchedulerRole")["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


# ---------------------------------------------------------------- code and orchestration


def _run_machines() -> dict[str, dict[str, Any]]:
    return _resources("AWS::Serverless::StateMachine")


def test_there_is_a_run_machine_per_policy_of_the_catalog_and_no_other_machine() -> None:
    policies = run_machines.policies(load_catalog(PACKAGED_CATALOG))
    assert set(_run_machines()) == {run_machines.logical_id(p) for p in policies}
    files = {path.name for path in STATEMACHINES.glob("*.asl.json")}
    assert files == {run_machines.file_name(p) for p in policies}


@pytest.mark.parametrize("machine_id", sorted(_resources("AWS::Serverless::StateMachine")))
def test_a_run_machine_is_named_for_its_policy_standard_logged_and_traced(machine_id: str) -> None:
    machine = resource(machine_id)["Properties"]
    uri = machine["DefinitionUri"]
    policy = uri.removeprefix("statemachines/run-").removesuffix(".asl.json")
    assert machine["Name"] == {"Fn::Sub": f"${{AWS::StackName}}-run-{policy}"}
    # The functions' grants name every run machine with one pattern: this one is among them.
    assert fnmatch.fnmatch(machine["Name"]["Fn::Sub"], RUN_MACHINES.split(":stateMachine:", 1)[1])
    assert machine["Role"] == {"Fn::GetAtt": ["RunStateMachineRole", "Arn"]}
    assert machine["Type"] == "STANDARD"
    assert machine["Logging"]["Level"] == "ERROR"
    assert machine["Logging"]["IncludeExecutionData"] is False
    assert machine["Tracing"] == {"Enabled": True}
    placeholders = set(re.findall(r"\$\{([^}]+)\}", (ROOT / uri).read_text()))
    assert placeholders == set(machine["DefinitionSubstitutions"]) == {"RunTableName"}


def test_the_functions_find_the_run_machines_by_the_prefix_they_are_named_with() -> None:
    env = template()["Globals"]["Function"]["Environment"]["Variables"]
    prefix = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-run-"
    assert env["STATE_MACHINE_PREFIX"] == {"Fn::Sub": prefix}
    assert prefix + "*" == RUN_MACHINES


@pytest.mark.parametrize(("function_id", "directory"), sorted(FUNCTIONS.items()))
def test_functions(function_id: str, directory: str) -> None:
    props = resource(function_id)["Properties"]
    merged = {**template()["Globals"]["Function"], **props}
    assert merged["CodeUri"] == f"functions/{directory}/"
    assert (ROOT / "functions" / directory / "app.py").exists()
    assert merged["Handler"] == "app.handler"
    assert merged["Runtime"] == {"Ref": "LambdaRuntime"}
    assert merged["Layers"] == [{"Ref": "JoblineLayer"}]
    assert merged["Tracing"] == "Active"
    assert merged["Architectures"] == ["x86_64"]
    log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
    assert resource(log_group)["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_environment_fills_every_setting() -> None:
    env = template()["Globals"]["Function"]["Environment"]["Variables"]
    fields = {name.upper() for name in Settings.model_fields}
    required = {name.upper() for name, field in Settings.model_fields.items() if field.is_required()}
    assert required <= set(env)
    powertools = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_TRACE_DISABLED", "LOG_LEVEL"}
    unknown = set(env) - fields - powertools
    assert not unknown, f"no setting reads {sorted(unknown)}"
    for name in ("JOB_QUEUE_ON_DEMAND_ARN", "JOB_QUEUE_SPOT_ARN", "JOB_QUEUE_GPU_ARN", "DEFAULT_JOB_DEFINITION_ARN"):
        assert name in env


def test_layer_is_built_for_python311() -> None:
    layer = resource("JoblineLayer")
    assert layer["Properties"]["ContentUri"] == "layers/jobline/"
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "x86_64"}
    makefile = (ROOT / "layers" / "jobline" / "Makefile").read_text()
    assert "--platform manylinux2014_x86_64 --implementation cp --python-version 3.11" in makefile
    assert template()["Parameters"]["LambdaRuntime"]["Default"] == "python3.11"


def test_batch_jobs_have_one_attempt_and_the_stack_roles() -> None:
    props = resource("DefaultJobDefinition")["Properties"]
    assert props["RetryStrategy"] == {"Attempts": 1}
    assert props["PlatformCapabilities"] == ["FARGATE"]
    assert props["PropagateTags"] is True
    container = props["ContainerProperties"]
    assert container["ExecutionRoleArn"] == {"Fn::GetAtt": ["JobExecutionRole", "Arn"]}
    assert container["JobRoleArn"] == {"Fn::GetAtt": ["JobRole", "Arn"]}
    assert container["NetworkConfiguration"] == {"AssignPublicIp": "ENABLED"}


def test_created_compute_uses_created_or_given_network() -> None:
    for ce_id in ("FargateComputeEnvironment", "FargateSpotComputeEnvironment", "GpuComputeEnvironment"):
        ce = resource(ce_id)
        assert ce["Condition"] in {"CreateBatchCompute", "CreateGpuCompute"}
        compute = ce["Properties"]["ComputeResources"]
        assert _refs(compute["Subnets"]) == {"PublicSubnetA", "PublicSubnetB", "SubnetIds"}
        assert _refs(compute["SecurityGroupIds"]) == {"JobSecurityGroup", "SecurityGroupIds"}
    assert resource("GpuComputeEnvironment")["Properties"]["ComputeResources"]["Ec2Configuration"] == [
        {"ImageType": "ECS_AL2_NVIDIA"}
    ]
