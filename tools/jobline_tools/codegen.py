"""The catalog-derived part of template.yaml: one EventBridge Scheduler schedule per schedule trigger.

    python -m jobline_tools.codegen write   # rewrite the generated block of template.yaml
    python -m jobline_tools.codegen check   # exit 1 (with a diff) when the block is out of date

Only the lines between BEGIN_MARKER and END_MARKER are touched; the rest of the template is
hand-written. The rendering is plain text built here, so it is deterministic and keeps comments.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jobline import settings
from jobline.catalog import Catalog, Job, ScheduleTrigger, load_catalog
from jobline.errors import CatalogError, CatalogProblem

BEGIN_MARKER = "# BEGIN GENERATED: schedules (make generate)"
END_MARKER = "# END GENERATED: schedules"
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


def render_schedules(catalog: Catalog) -> str:
    """The text between the markers: one AWS::Scheduler::Schedule per schedule trigger, in catalog order."""
    seen: dict[str, str] = {}
    blocks: list[list[str]] = []
    for job in catalog.jobs:
        for schedule in job.triggers.schedule:
            _check_schedule(job, schedule)
            logical_id = schedule_logical_id(job, schedule)
            here = f"job {job.name!r} schedule {schedule.name!r}"
            if logical_id in seen:
                rule = f"renders as logical id {logical_id}, like {seen[logical_id]}; rename one of them"
                raise CatalogError(CatalogProblem(rule, job.name, f"triggers.schedule[{schedule.name}].name"))
            seen[logical_id] = here
            blocks.append(_render_schedule(job, schedule))
    header = [
        f"{RESOURCE_INDENT}# Do not edit: rendered from layers/jobline/jobline/jobs.yaml by `make generate`.",
    ]
    if not blocks:
        header.append(f"{RESOURCE_INDENT}# (the catalog declares no schedule triggers)")
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
            render_schedules(catalog).splitlines(keepends=True),
            fromfile=f"{template_name} (generated block)",
            tofile="rendered from the catalog",
        )
    )


def _default_template() -> Path:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobline_tools.codegen", description="Render the catalog's schedules into template.yaml."
    )
    parser.add_argument("command", choices=["write", "check"])
    parser.add_argument("--template", type=Path, default=None, help="default: ./template.yaml")
    parser.add_argument("--catalog", type=Path, default=settings.PACKAGED_CATALOG)
    args = parser.parse_args(argv)
    template: Path = args.template or _default_template()

    try:
        catalog = load_catalog(args.catalog)
        text = template.read_text(encoding="utf-8")
        count = sum(len(job.triggers.schedule) for job in catalog.jobs)
        if args.command == "check":
            diff = block_diff(text, catalog, template.name)
            if diff:
                print(
                    f"{template}: the generated schedules block is out of date with {args.catalog}; "
                    "run `make generate` and commit the result.",
                    file=sys.stderr,
                )
                sys.stderr.writelines(diff)
                return 1
            print(f"{template}: generated schedules block is up to date ({count} schedules)")
            return 0
        new_text = replace_block(text, render_schedules(catalog))
        if new_text == text:
            print(f"{template}: already up to date ({count} schedules)")
        else:
            _write_atomically(template, new_text)
            print(f"{template}: wrote {count} schedules")
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
