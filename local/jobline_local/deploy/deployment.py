"""What a deployment made in the local AWS: each resource's physical id and attributes, the
outputs, and what the local services need to run the template's functions and event sources."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobline_local.deploy.template import Physical


@dataclass
class InvokeConfig:
    maximum_retry_attempts: int = 2
    maximum_event_age_seconds: int = 6 * 3600
    on_failure: str | None = None
    on_success: str | None = None


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    runtime: str
    timeout: int
    memory: int
    environment: dict[str, str]
    layer_dirs: list[Path]
    log_group: str
    reserved_concurrency: int | None = None
    dead_letter_arn: str | None = None
    invoke_config: InvokeConfig = field(default_factory=InvokeConfig)


@dataclass
class EventSourceMapping:
    uuid: str
    function_name: str
    source_arn: str
    batch_size: int = 10
    batching_window_seconds: int = 0
    report_batch_item_failures: bool = False
    enabled: bool = True
    maximum_concurrency: int | None = None
    kind: str = "sqs"
    starting_position: str = "LATEST"
    filters: list[str] = field(default_factory=list)
    bisect_on_error: bool = False
    maximum_retry_attempts: int = -1
    on_failure: str | None = None


@dataclass
class Deployment:
    stack_name: str
    region: str
    account_id: str
    resources: dict[str, Physical] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)  # by function name
    event_source_mappings: list[EventSourceMapping] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def function_by_arn(self, arn: str) -> FunctionSpec | None:
        base = ":".join(arn.split(":")[:7])
        for spec in self.functions.values():
            if spec.arn == base:
                return spec
        return self.functions.get(arn)
