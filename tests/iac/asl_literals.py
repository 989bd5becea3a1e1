"""Every rule literal in an ASL definition, found by where it sits, and checked against jobline.

A rule literal is a run status, reason or rank the definition writes to or compares with a run
row, a backend status or type it compares with, or a failure-reason pattern it classifies by.
They sit in three places: DynamoDB tasks' ExpressionAttributeValues (bound to a row attribute
by the task's expressions), Choice rules (by the Variable they test) and Pass states' Result
(by their ResultPath). A literal in any other place, or one whose meaning cannot be told from
its place, is a problem too: nothing hides from the check.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.iac.rules import Rules

# Row attributes whose literals are rules, and the vocabulary each takes.
ROW_ATTRIBUTES = {"status": "run status", "reason": "reason", "status_rank": "rank"}
# Row attributes whose literals are not run rules (they are checked by the integration tests).
OTHER_ROW_ATTRIBUTES = {"version": "the optimistic-lock counter", "holders": "a job's slot holders"}
# What each Choice Variable holds, so what vocabulary its comparison literals come from.
CHOICE_VARIABLES = {
    "$.current.status": "run status",
    "$.outcome.status": "run status",
    "$.service_result.status": "run status",
    "$.backend": "backend type",
    "$.described.Status": "batch_service status",
    "$.failure.job.Status": "batch status",
    "$.failure.job.JobRunState": "glue status",
    "$.failure.job.ProcessingJobStatus": "sagemaker_processing status",
    "$.failure.job.StatusReason": "batch timeout reason",
    "$.failure.job.FailureReason": "runtime exceeded pattern",
    "$.failure.job.ExitMessage": "runtime exceeded pattern",
    "$.described.StatusReason": "service timeout reason",
    "$.failure.job.Container.ExitCode": "exit code",
    "$.retry_on_timeout": "catalog flag",
    "$.error.Error": "step functions error",
}
# Pass states' ResultPath -> what their Result is.
PASS_RESULTS = {"$.outcome": "outcome", "$.attempt": "first attempt"}
_COMPARE = re.compile(
    r"^(String|Numeric|Boolean|Timestamp)(Equals|LessThan|GreaterThan|LessThanEquals|GreaterThanEquals|Matches)$"
)
_PATH = r"#\w+(?:\.#\w+|\[\d+\])*"
_BINDINGS = (
    re.compile(rf"({_PATH})\s*(?:=|<>|<=|>=|<|>)\s*(:\w+)"),
    re.compile(rf"size\(\s*({_PATH})\s*\)\s*(?:=|<>|<=|>=|<|>)\s*(:\w+)"),
    re.compile(rf"(?:contains|begins_with)\(\s*({_PATH})\s*,\s*(:\w+)\s*\)"),
    re.compile(rf"\b(?:ADD|DELETE)\s+({_PATH})\s+(:\w+)"),
    re.compile(rf",\s*({_PATH})\s+(:\w+)"),  # a second pair of an ADD or DELETE clause
)
_SET = re.compile(rf"({_PATH})\s*=\s*(:\w+)")
_IN = re.compile(rf"({_PATH})\s+IN\s*\(([^)]*)\)", re.IGNORECASE)


@dataclass(frozen=True)
class Literal:
    state: str
    path: str  # JSONPath of the literal in the definition
    kind: str
    value: Any
    context: tuple[Any, ...] = ()  # a row literal: its placeholder, and the status set beside it

    def problem(self, why: str) -> str:
        return f"{self.state}: {self.path} = {self.value!r} ({self.kind}): {why}"


def states(asl: dict[str, Any], prefix: str = "$.States") -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every state, nested ones (Parallel branches, Map processors) included."""
    for name, state in asl["States"].items():
        path = f"{prefix}.{name}"
        yield name, path, state
        for i, branch in enumerate(state.get("Branches", [])):
            yield from states(branch, f"{path}.Branches[{i}].States")
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from states(state[key], f"{path}.{key}.States")


def literals(asl: dict[str, Any]) -> Iterator[Literal | str]:
    """Every rule literal of the definition, or a problem where one's meaning is unknown."""
    for name, path, state in states(asl):
        if state["Type"] == "Task" and ":dynamodb:" in state["Resource"]:
            yield from _dynamodb(name, path, state.get("Parameters", {}))
        elif state["Type"] == "Choice":
            for i, rule in enumerate(state["Choices"]):
                yield from _choice(name, f"{path}.Choices[{i}]", rule)
        elif state["Type"] == "Pass" and "Result" in state:
            kind = PASS_RESULTS.get(state.get("ResultPath", "$"))
            if kind is None:
                result_path = state.get("ResultPath")
                yield f"{name}: {path}.Result: a Pass Result at ResultPath {result_path!r} of unknown meaning"
            else:
                yield Literal(name, f"{path}.Result", kind, state["Result"])


def _dynamodb(name: str, path: str, parameters: dict[str, Any]) -> Iterator[Literal | str]:
    names = parameters.get("ExpressionAttributeNames", {})
    expressions = " ; ".join(parameters.get(k, "") for k in ("UpdateExpression", "ConditionExpression"))
    bound: dict[str, set[str]] = {}
    for pattern in _BINDINGS:
        for attribute, placeholder in pattern.findall(expressions):
            bound.setdefault(placeholder, set()).add(attribute)
    for attribute, placeholders in _IN.findall(expressions):
        for placeholder in re.findall(r":\w+", placeholders):
            bound.setdefault(placeholder, set()).add(attribute)
    # The status literal a SET writes next to a rank: the two must agree.
    values = parameters.get("ExpressionAttributeValues", {})
    status_placeholders = [p for a, p in _SET.findall(expressions) if names.get(a) == "status"]
    status_set = next((values[p].get("S") for p in status_placeholders if p in values), None)
    for placeholder, value in values.items():
        literal = {k: v for k, v in value.items() if not k.endswith(".$")}
        if not literal:
            continue  # taken from the execution's data at run time
        where = f"{path}.Parameters.ExpressionAttributeValues['{placeholder}']"
        attributes = {names.get(a.rsplit(".", 1)[-1], "?") for a in bound.get(placeholder, ())}
        if len(attributes) != 1:
            yield f"{name}: {where}: bound to {sorted(attributes) or 'no attribute'} in the expressions"
            continue
        (attribute,) = attributes
        ((type_, text),) = literal.items()
        if attribute in ROW_ATTRIBUTES:
            value = int(text) if type_ == "N" else text
            yield Literal(name, f"{where}.{type_}", ROW_ATTRIBUTES[attribute], value, (placeholder, status_set))
        elif attribute not in OTHER_ROW_ATTRIBUTES:
            yield f"{name}: {where}: a literal for row attribute {attribute!r} of unknown meaning"


def _choice(name: str, path: str, rule: dict[str, Any]) -> Iterator[Literal | str]:
    for key in ("And", "Or"):
        for i, sub in enumerate(rule.get(key, [])):
            yield from _choice(name, f"{path}.{key}[{i}]", sub)
    if "Not" in rule:
        yield from _choice(name, f"{path}.Not", rule["Not"])
    for operator, value in rule.items():
        if not _COMPARE.match(operator):
            continue  # IsPresent and the like, *Path comparisons, combinators, Next
        kind = CHOICE_VARIABLES.get(rule["Variable"])
        if kind is None:
            yield f"{name}: {path}.{operator} = {value!r}: compares {rule['Variable']}, of unknown meaning"
        else:
            yield Literal(name, f"{path}.{operator}", kind, value)


def problems(asl: dict[str, Any], rules: Rules) -> list[str]:
    """Every literal of `asl` that is not one jobline's rules define, and every literal whose
    meaning the check cannot tell, each naming its state and JSON path."""
    found: list[str] = []
    seen: set[str] = set()
    for item in literals(asl):
        if isinstance(item, str):
            found.append(item)
            seen.add(item.split(": ", 2)[1].split(" ", 1)[0])
            continue
        seen.add(item.path)
        found.extend(item.problem(why) for why in _check(item, rules))
    found.extend(_stray(asl, rules, seen))
    return found


def _check(literal: Literal, rules: Rules) -> Iterator[str]:
    kind, value = literal.kind, literal.value
    if literal.context:
        placeholder, status_set = literal.context
        yield from _row_literal(kind, placeholder, value, status_set, rules)
    elif kind == "run status":
        if value not in rules.run_statuses:
            yield f"not a RunStatus (jobline has {sorted(rules.run_statuses)})"
    elif kind == "backend type":
        if value not in rules.backends:
            yield f"not a backend type (jobline has {sorted(rules.backends)})"
    elif kind.endswith(" status") and kind != "run status":
        backend = kind.removesuffix(" status")
        if value not in rules.backends[backend].statuses:
            yield f"not a {backend} status jobline maps (it has {sorted(rules.backends[backend].statuses)})"
    elif kind == "batch timeout reason":
        if value != rules.batch_timeout_reason + "*":
            yield f"jobline recognises a Batch timeout by the prefix {rules.batch_timeout_reason!r}"
    elif kind == "runtime exceeded pattern":
        if value != f"*{rules.max_runtime_exceeded}*":
            yield f"jobline recognises SageMaker's runtime limit by {rules.max_runtime_exceeded!r} anywhere in a reason"
    elif kind == "service timeout reason":
        if value not in (rules.batch_timeout_reason + "*", f"*{rules.max_runtime_exceeded}*"):
            yield (
                f"jobline recognises a service job's timeout by the prefix {rules.batch_timeout_reason!r}"
                f" or by {rules.max_runtime_exceeded!r} anywhere in the reason"
            )
    elif kind == "exit code":
        if value != 0:
            yield "jobline.backends.batch.classify_batch_failure tells exit code 0 from any other"
    elif kind == "outcome":
        if set(value) != {"status", "reason"}:
            yield "an outcome is {status, reason}"
        elif value["status"] not in rules.terminal or value["reason"] not in rules.reasons:
            yield f"status must be one of {sorted(rules.terminal)} and reason a jobline Reason"
    elif kind == "first attempt" and value != 1:
        yield "attempts count from 1 (jobline.status.is_final_attempt compares with max_attempts)"
    elif kind == "step functions error" and value != "States.TaskFailed":
        yield "only a job that ran and failed is told apart by its error name (States.TaskFailed)"
    # "catalog flag" literals are booleans of the run input, not rules.


def _row_literal(kind: str, placeholder: str, value: Any, status_set: str | None, rules: Rules) -> Iterator[str]:
    if kind == "run status" and value not in rules.run_statuses:
        yield f"not a RunStatus (jobline has {sorted(rules.run_statuses)})"
    elif kind == "reason" and value not in rules.reasons:
        yield f"not a jobline Reason (it has {sorted(rules.reasons)})"
    elif kind == "rank":
        named = f"RANK_{placeholder.lstrip(':').upper()}"
        if value not in rules.ranks.values():
            yield f"not a run rank (jobline has {dict(rules.ranks)})"
        elif named in rules.ranks and value != rules.ranks[named]:
            yield f"{placeholder} names {named}, which is {rules.ranks[named]}"
        elif named not in rules.ranks and status_set is None:
            yield f"{placeholder} names no RANK_* constant and is set by no status literal"
        elif named not in rules.ranks and rules.run_rank.get(status_set) != value:
            yield f"set with status {status_set!r}, whose rank is {rules.run_rank.get(status_set)}"


def _stray(asl: Any, rules: Rules, seen: set[str], path: str = "$") -> Iterator[str]:
    """A jobline status, reason or backend status anywhere the walk did not look."""
    vocabulary = rules.run_statuses | rules.reasons | set().union(*(b.statuses for b in rules.backends.values()))
    if isinstance(asl, dict):
        for key, value in asl.items():
            if key in ("Comment", "Next", "Default", "StartAt", "Cause", "Error"):
                continue
            yield from _stray(value, rules, seen, f"{path}.{key}" if re.fullmatch(r"\w+", key) else f"{path}['{key}']")
    elif isinstance(asl, list):
        for i, value in enumerate(asl):
            yield from _stray(value, rules, seen, f"{path}[{i}]")
    elif isinstance(asl, str) and asl in vocabulary and not any(_within(path, p) for p in seen):
        state = path.split(".")[2] if path.startswith("$.States.") else "(top level)"
        yield f"{state}: {path} = {asl!r}: a jobline status or reason where no rule literal is expected"


def _within(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith((ancestor + ".", ancestor + "["))
