"""A step of the layer's build (layers/jobline/Makefile runs it; it is not shipped): keep only the
AWS service models jobline calls.

`python slim.py SITE SERVICE...` deletes every other service's directory from botocore's and
boto3's data, the API examples (documentation only), and every other service's entries from
botocore's endpoints.json (1.2 MiB, parsed at the first client of each process), keyed by each kept
service's endpoint prefix (`states` for stepfunctions, `api.sagemaker` for sagemaker).
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path


def endpoint_prefix(models: Path, service: str) -> str:
    newest = max((models / service).iterdir())  # API versions are dates: the newest is the one used
    return json.loads(gzip.decompress((newest / "service-2.json.gz").read_bytes()))["metadata"]["endpointPrefix"]


def slim(site: Path, services: set[str]) -> None:
    models = site / "botocore" / "data"
    if missing := services - {entry.name for entry in models.iterdir()}:
        raise SystemExit(f"botocore has no model for {sorted(missing)}")
    for data in (models, site / "boto3" / "data"):
        for entry in data.iterdir():
            if entry.is_dir() and entry.name not in services:
                shutil.rmtree(entry)
    for example in models.glob("*/*/examples-1.json"):
        example.unlink()
    prefixes = {endpoint_prefix(models, service) for service in services}
    endpoints = models / "endpoints.json"
    table = json.loads(endpoints.read_text())
    for partition in table["partitions"]:
        partition["services"] = {name: spec for name, spec in partition["services"].items() if name in prefixes}
    endpoints.write_text(json.dumps(table, separators=(",", ":")))


if __name__ == "__main__":
    slim(Path(sys.argv[1]), set(sys.argv[2:]))
