"""The catalog-derived part of template.yaml: one EventBridge Scheduler schedule per schedule trigger,
one EventBridge rule per S3 trigger and manifest trigger (default bus) and per bus trigger (the job
bus), and one run state machine per retry policy (jobline_tools.run_machines, with its
statemachines/run-*.asl.json).

EventBridge does all the matching: each rule carries its trigger's pattern, and its target's
InputTransformer sends `{"job", "trigger", "event"}` (jobline.triggers.RuleDelivery) to a queue,
so an object or event no trigger matches costs nothing, and a burst waits in SQS for its function
(S3 and bus triggers: their intake queue; manifests: the fan-out request queue).

    python -m jobline_tools.codegen write   # rewrite the generated block and the definitions
    python -m jobline_tools.codegen check   # exit 1 (with a diff) when either is out of date

Only the lines between BEGIN_MARKER and END_MARKER (and statemachines/run-*.asl.json) are
touched; the rest of the template is hand-written. The rendering is plain text built here, so it
is deterministic and keeps comments.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from jobline import event_patterns, settings
from jobline.catalog import BusTrigger, Catalog, Job, ManifestTrigger, S3Trigger, ScheduleTrigger, load_catalog
from jobline.errors import CatalogError, CatalogProblem
from jobline_tools import run_machines

BEGIN_MARKER = "# BEGIN GENERATED: catalog triggers (make generate)"
END_MARKER = "# END GENERATED: catalog triggers"
# Resources live one level under `Resources:`.
RESOURCE_INDENT = "  "

# EventBridge Scheduler substitutes these in the target input at every invocation.
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
EXECUTION_ID = "<aws.scheduler.execution-id>"

# Scheduler's limits (AWS::Scheduler::Schedule).
MAX_SCHEDULE_NAME = 64
MAX_DESCRIPTION = 512
RETRY_ATTEMPTS = 4
MAX_EVENT_AGE_SECONDS = 3600

# Generated rule names: `jl-<stack token>-<s3|bus|manifest>-<job>-<n>`. The token (the first group of the
# stack id's UUID) keeps two stacks' rules on the shared default bus apart in 8 characters, where
# a stack name (up to 128) would not fit a rule name (64). The target queues' policy and the event
# DLQ's policy name these prefixes with a wildcard: one statement per queue instead of one per
# rule, because a queue policy holds at most 8,192 bytes ("Amazon SQS policy quotas").
RULE_NAME_PREFIX = "jl-${StackToken}"
STACK_ID_PREFIX = "!Select [0, !Split ['-', !Select [2, !Split ['/', !Ref AWS::StackId]]]]"
MAX_RULE_NAME = 64
# EventBridge quotas (docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html): "Number of
# rules: 300 per event bus" (adjustable; 100 in af-south-1 and eu-south-1), and "Rules containing
# wildcards: 30 rules per event bus" (not adjustable). The default bus is the account's: other
# stacks' rules there count too, which no template can see.
RULES_PER_BUS = 300
WILDCARD_RULES_PER_BUS = 30
# The input a rule's target receives. `<aws.events.event.json>` is the whole matched event, detail
# included, inserted as JSON (EventBridge user guide, "Amazon EventBridge input transformation",
# predefined variables; only valid as the value of a JSON field, as here).
EVENT_PLACEHOLDER = "<aws.events.event.json>"
# A bus pattern that does not name `source` never matches jobline's own run notifications, which
# the notify function puts on the same bus (source "jobline"): no job is fed back by accident.
OWN_SOURCE = "jobline"


class TemplateBlockError(Exception):
    """template.yaml has no usable generated block (markers missing, repeated or out of order)."""


def schedule_input(
    job: Job,
    schedule: ScheduleTrigger,
    *,
    scheduled_time: str = SCHEDULED_TIME,
    execution_id: str = EXECUTION_ID,
) -> dict[str, Any]:
    """The event the schedule hands to the schedule trigger function.

    With the defaults this is the template's Input, Scheduler's placeholders included; the local
    stack passes the real scheduled time and execution id to fire the same event itself.
    """
    return {
        "job": job.name,
        "schedule": schedule.name,
        "scheduled_time": scheduled_time,
        "execution_id": execution_id,
        "arguments": dict(sorted(schedule.arguments.items())),
    }


def camel_case(name: str) -> str:
    """`nightly-report` -> `NightlyReport` (catalog names are lower case, digits and dashes)."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("-"))


def schedule_logical_id(job: Job, schedule: ScheduleTrigger) -> str:
    return f"Schedule{camel_case(job.name)}{camel_case(schedule.name)}"


def schedule_name(job: Job, schedule: ScheduleTrigger) -> str:
    """The schedule's name inside the stack's own schedule group.

    The stack name is left out on purpose: the group (one per stack) already scopes the names,
    and `<stack>-<job>-<schedule>` could pass Scheduler's 64-character limit (job names have up
    to 40 characters, schedule names up to 23). The dot cannot occur in either name, so two
    different (job, schedule) pairs never share a schedule name.
    """
    return f"{job.name}.{schedule.name}"


def _scalar(value: str) -> str:
    """A YAML scalar that reads back as exactly `value` (never as a bool, number or tag)."""
    if value.isprintable():
        return "'" + value.replace("'", "''") + "'"
    return json.dumps(value)  # JSON string escapes are valid in a YAML double-quoted scalar


def _check_schedule(job: Job, schedule: ScheduleTrigger) -> None:
    field = f"triggers.schedule[{schedule.name}]"
    try:
        ZoneInfo(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        rule = f"{schedule.timezone!r} is not an IANA time zone name (e.g. UTC, Europe/Paris)"
        raise CatalogError(CatalogProblem(rule, job.name, f"{field}.timezone")) from None
    if len(schedule_name(job, schedule)) > MAX_SCHEDULE_NAME:  # the catalog's name patterns prevent this
        rule = f"{schedule_name(job, schedule)!r} is longer than 64 characters"
        raise CatalogError(CatalogProblem(rule, job.name, f"{field}.name"))


def _render_schedule(job: Job, schedule: ScheduleTrigger) -> list[str]:
    description = (schedule.description or f"jobline: job {job.name}, schedule {schedule.name}")[:MAX_DESCRIPTION]
    # ensure_ascii keeps the JSON printable, so it always fits a single-quoted YAML scalar.
    target_input = json.dumps(schedule_input(job, schedule), ensure_ascii=True)
    lines = [
        f"{schedule_logical_id(job, schedule)}:",
        "  Type: AWS::Scheduler::Schedule",
        "  Properties:",
        f"    Name: {_scalar(schedule_name(job, schedule))}",
        "    GroupName: !Ref JobSchedulesGroup",
        f"    Description: {_scalar(description)}",
        f"    ScheduleExpression: {_scalar(schedule.expression)}",
        f"    ScheduleExpressionTimezone: {_scalar(schedule.timezone)}",
        "    State: ENABLED",
        "    FlexibleTimeWindow:",
        "      Mode: 'OFF'",
        "    Target:",
        "      Arn: !GetAtt ScheduleTriggerFunction.Arn",
        "      RoleArn: !GetAtt SchedulerRole.Arn",
        f"      Input: {_scalar(target_input)}",
        "      RetryPolicy:",
        f"        MaximumRetryAttempts: {RETRY_ATTEMPTS}",
        f"        MaximumEventAgeInSeconds: {MAX_EVENT_AGE_SECONDS}",
        "      DeadLetterConfig:",
        "        Arn: !GetAtt EventDeadLetterQueue.Arn",
    ]
    return [RESOURCE_INDENT + line for line in lines]


def rule_input_template(job: Job, index: int) -> str:
    """The InputTransformer template of a rule: the job, the trigger's index, the matched event."""
    return json.dumps({"job": job.name, "trigger": index, "event": "EVENT"}).replace('"EVENT"', EVENT_PLACEHOLDER)


def _escape_wildcard(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*")


def s3_key_condition(trigger: S3Trigger | ManifestTrigger) -> list[dict[str, str]]:
    """The object key condition: a prefix, a suffix, or both as one wildcard (EventBridge ANDs
    fields, not two conditions on one field), i.e. `<prefix>*<suffix>` with `*` and `\\` escaped:
    the key starts with the prefix and then ends with the suffix."""
    if trigger.prefix and trigger.suffix:
        return [{"wildcard": f"{_escape_wildcard(trigger.prefix)}*{_escape_wildcard(trigger.suffix)}"}]
    if trigger.prefix:
        return [{"prefix": trigger.prefix}]
    return [{"suffix": trigger.suffix}]


def s3_rule_pattern(trigger: S3Trigger | ManifestTrigger, bucket: Any) -> dict[str, Any]:
    """`bucket` is the input bucket's name: {"Ref": "InputBucket"} in the template."""
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]}, "object": {"key": s3_key_condition(trigger)}},
    }


def bus_rule_pattern(trigger: BusTrigger) -> dict[str, Any]:
    if "source" in trigger.pattern:
        return dict(trigger.pattern)
    return {"source": [{"anything-but": [OWN_SOURCE]}], **trigger.pattern}


@dataclass(frozen=True)
class _Rule:
    kind: str  # "s3", "bus" or "manifest"
    job: Job
    index: int
    pattern: dict[str, Any]

    @property
    def logical_id(self) -> str:
        return f"{self.kind.capitalize()}Rule{camel_case(self.job.name)}{self.index}"

    @property
    def name(self) -> str:
        return f"{RULE_NAME_PREFIX}-{self.kind}-{self.job.name}-{self.index}"

    @property
    def bus(self) -> str:
        return "JobBus" if self.kind == "bus" else "default"


def _rules(catalog: Catalog) -> list[_Rule]:
    rules = []
    for job in catalog.jobs:
        bucket = {"Ref": "InputBucket"}
        rules += [_Rule("s3", job, i, s3_rule_pattern(t, bucket)) for i, t in enumerate(job.triggers.s3)]
        rules += [_Rule("bus", job, i, bus_rule_pattern(t)) for i, t in enumerate(job.triggers.bus)]
        rules += [_Rule("manifest", job, i, s3_rule_pattern(t, bucket)) for i, t in enumerate(job.triggers.manifest)]
    return rules


# Where each kind of rule delivers (SQS queues; their QueuePolicy admits the kind's rule names).
RULE_TARGETS = {"s3": "S3IntakeQueue", "bus": "BusIntakeQueue", "manifest": "FanoutRequestQueue"}


def _render_rule(rule: _Rule) -> list[str]:
    description = f"jobline: job {rule.job.name}, triggers.{rule.kind}[{rule.index}]"
    lines = [
        f"{rule.logical_id}:",
        "  Type: AWS::Events::Rule",
        "  Properties:",
        "    Name: !Sub",
        f"      - {_scalar(rule.name)}",
        f"      - StackToken: {STACK_ID_PREFIX}",
        f"    Description: {_scalar(description)}",
        *(["    EventBusName: !Ref JobBus"] if rule.bus == "JobBus" else []),
        "    State: ENABLED",
        # JSON is YAML: the pattern as data; ensure_ascii keeps it printable.
        f"    EventPattern: {json.dumps(rule.pattern, ensure_ascii=True)}",
        "    Targets:",
        "      - Id: trigger",
        f"        Arn: !GetAtt {RULE_TARGETS[rule.kind]}.Arn",
        "        InputTransformer:",
        f"          InputTemplate: {_scalar(rule_input_template(rule.job, rule.index))}",
        "        RetryPolicy:",
        f"          MaximumRetryAttempts: {RETRY_ATTEMPTS}",
        f"          MaximumEventAgeInSeconds: {MAX_EVENT_AGE_SECONDS}",
        "        DeadLetterConfig:",
        "          Arn: !GetAtt EventDeadLetterQueue.Arn",
    ]
    return [RESOURCE_INDENT + line for line in lines]


def _check_rules(rules: list[_Rule], handwritten: dict[str, int]) -> None:
    for rule in rules:
        longest = len(rule.name.replace("${StackToken}", "x" * 8))
        if longest > MAX_RULE_NAME:  # the catalog's name patterns prevent this
            problem = f"rule name {rule.name!r} is over {MAX_RULE_NAME} characters"
            raise CatalogError(CatalogProblem(problem, rule.job.name, f"triggers.{rule.kind}[{rule.index}]"))
    for bus in ("default", "JobBus"):
        on_bus = [r for r in rules if r.bus == bus]
        total = len(on_bus) + handwritten.get(bus, 0)
        if total > RULES_PER_BUS:
            problem = (
                f"{len(on_bus)} generated rules and {handwritten.get(bus, 0)} of the template on the {bus} bus "
                f"pass EventBridge's {RULES_PER_BUS} rules per bus"
            )
            raise CatalogError(CatalogProblem(problem, None, "triggers"))
        wildcards = [r for r in on_bus if event_patterns.uses_wildcard(r.pattern)]
        if len(wildcards) > WILDCARD_RULES_PER_BUS:
            problem = (
                f"{len(wildcards)} rules with wildcards (S3 triggers with a prefix and a suffix, wildcard "
                f"patterns) on the {bus} bus pass EventBridge's {WILDCARD_RULES_PER_BUS}"
            )
            raise CatalogError(CatalogProblem(problem, None, "triggers"))


def handwritten_rules(template_text: str) -> dict[str, int]:
    """EventBridge rules the template declares outside the generated block, per bus ("default" or
    the logical id of the bus): they share the per-bus quota with the generated ones."""
    lines = template_text.splitlines(keepends=True)
    begin, end = _marker_lines(lines)
    outside = yaml.load("".join(lines[:begin] + lines[end:]), Loader=_TemplateLoader)  # noqa: S506 - SafeLoader + tags
    resources = (outside or {}).get("Resources", {})
    counts: dict[str, int] = {}

    def count(bus: Any) -> None:
        key = bus["Ref"] if isinstance(bus, dict) and "Ref" in bus else "default" if bus is None else str(bus)
        counts[key] = counts.get(key, 0) + 1

    for resource in resources.values():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Events::Rule":
            count(props.get("EventBusName"))
        for event in (props.get("Events") or {}).values():
            if event.get("Type") == "EventBridgeRule":
                count((event.get("Properties") or {}).get("EventBusName"))
    return counts


class _TemplateLoader(yaml.SafeLoader):
    """template.yaml's short-form intrinsics (`!Ref X`) read as their long form ({"Ref": "X"})."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        return {name: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


_TemplateLoader.add_multi_constructor("!", _intrinsic)


def render(catalog: Catalog, handwritten: dict[str, int], *, inline_definitions: bool = False) -> str:
    """The text between the markers, in catalog order: every schedule (AWS::Scheduler::Schedule),
    then every S3, bus and manifest trigger rule (AWS::Events::Rule), then the run state machines by
    policy (inline_definitions: see run_machines.render_resources). `handwritten`: handwritten_rules()."""
    seen: dict[str, str] = {}

    def claim(logical_id: str, job: Job, here: str, field: str) -> None:
        if logical_id in seen:
            problem = f"renders as logical id {logical_id}, like {seen[logical_id]}; rename one of them"
            raise CatalogError(CatalogProblem(problem, job.name, field))
        seen[logical_id] = here

    blocks: list[list[str]] = []
    for job in catalog.jobs:
        for schedule in job.triggers.schedule:
            _check_schedule(job, schedule)
            here = f"job {job.name!r} schedule {schedule.name!r}"
            claim(schedule_logical_id(job, schedule), job, here, f"triggers.schedule[{schedule.name}].name")
            blocks.append(_render_schedule(job, schedule))
    rules = _rules(catalog)
    _check_rules(rules, handwritten)
    for rule in rules:
        claim(rule.logical_id, rule.job, f"job {rule.job.name!r}", f"triggers.{rule.kind}[{rule.index}]")
        blocks.append(_render_rule(rule))
    blocks += run_machines.render_resources(catalog, inline=inline_definitions)
    header = [
        f"{RESOURCE_INDENT}# Do not edit: rendered from layers/jobline/jobline/jobs.yaml by `make generate`.",
    ]
    if not blocks:
        header.append(f"{RESOURCE_INDENT}# (the catalog declares no jobs)")
    lines = list(header)
    for block in blocks:
        lines.append("")
        lines.extend(block)
    return "".join(line + "\n" for line in lines)


def _marker_lines(lines: list[str]) -> tuple[int, int]:
    begins = [i for i, line in enumerate(lines) if line.strip() == BEGIN_MARKER]
    ends = [i for i, line in enumerate(lines) if line.strip() == END_MARKER]
    if len(begins) != 1 or len(ends) != 1 or begins[0] > ends[0]:
        raise TemplateBlockError(
            f"expected exactly one line {BEGIN_MARKER!r} followed by one line {END_MARKER!r} "
            f"(found {len(begins)} and {len(ends)})"
        )
    return begins[0], ends[0]


def current_block(template_text: str) -> str:
    lines = template_text.splitlines(keepends=True)
    begin, end = _marker_lines(lines)
    return "".join(lines[begin + 1 : end])


def replace_block(template_text: str, block: str) -> str:
    lines = template_text.splitlines(keepends=True)
    begin, end = _marker_lines(lines)
    return "".join([*lines[: begin + 1], block, *lines[end:]])


def block_diff(template_text: str, catalog: Catalog, template_name: str = "template.yaml") -> list[str]:
    """Unified diff from the template's block to a fresh render; empty when they agree."""
    return list(
        difflib.unified_diff(
            current_block(template_text).splitlines(keepends=True),
            render(catalog, handwritten_rules(template_text)).splitlines(keepends=True),
            fromfile=f"{template_name} (generated block)",
            tofile="rendered from the catalog",
        )
    )


def default_template() -> Path:
    here = Path.cwd() / "template.yaml"
    if here.exists():
        return here
    # A source checkout: tools/jobline_tools/codegen.py -> repository root.
    return Path(__file__).resolve().parents[2] / "template.yaml"


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", text=True)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o7777)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _summary(catalog: Catalog) -> str:
    triggers = [job.triggers for job in catalog.jobs]
    counts = (
        sum(len(t.schedule) for t in triggers),
        sum(len(t.s3) for t in triggers),
        sum(len(t.bus) for t in triggers),
        sum(len(t.manifest) for t in triggers),
    )
    machines = len(run_machines.policies(catalog))
    return "{} schedules, {} S3 rules, {} bus rules, {} manifest rules, {} run state machines".format(*counts, machines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobline_tools.codegen", description="Render the catalog's triggers into template.yaml."
    )
    parser.add_argument("command", choices=["write", "check"])
    parser.add_argument("--template", type=Path, default=None, help="default: ./template.yaml")
    parser.add_argument("--catalog", type=Path, default=settings.PACKAGED_CATALOG)
    args = parser.parse_args(argv)
    template: Path = args.template or default_template()
    definitions = template.parent / run_machines.DEFINITION_DIR

    try:
        catalog = load_catalog(args.catalog)
        text = template.read_text(encoding="utf-8")
        count = _summary(catalog)
        if args.command == "check":
            diff = block_diff(text, catalog, template.name)
            drift = run_machines.definition_drift(definitions, catalog)
            if diff or drift:
                print(
                    f"{template}: the generated block or the run state machines are out of date with "
                    f"{args.catalog}; run `make generate` and commit the result.",
                    file=sys.stderr,
                )
                sys.stderr.writelines(diff)
                sys.stderr.writelines(f"{line}\n" for line in drift)
                return 1
            print(f"{template}: the generated block and run state machines are up to date ({count})")
            return 0
        new_text = replace_block(text, render(catalog, handwritten_rules(text)))
        for done in run_machines.write_definitions(definitions, catalog):
            print(f"{template.parent / done.split(' ', 1)[1]}: {done.split(' ', 1)[0]}")
        if new_text == text:
            print(f"{template}: already up to date ({count})")
        else:
            _write_atomically(template, new_text)
            print(f"{template}: wrote {count}")
        return 0
    except CatalogError as exc:
        print(f"{args.catalog}: {exc}", file=sys.stderr)
        return 1
    except TemplateBlockError as exc:
        print(f"{template}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cannot read or write {exc.filename or template}: {exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
