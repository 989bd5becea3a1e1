"""template.yaml as data (CloudFormation short-form tags become {"Fn::...": ...} dicts)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jobline_local.deploy.template import parse_yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
STATEMACHINES = ROOT / "statemachines"


@lru_cache(maxsize=1)
def template() -> dict[str, Any]:
    return parse_yaml(TEMPLATE.read_text())


def resource(logical_id: str) -> dict[str, Any]:
    return template()["Resources"][logical_id]
