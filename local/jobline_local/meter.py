"""The bench's meter: what the local stack's requests would be billed on AWS, counted inside the
stack's server from the requests themselves.

It lives outside the tree it measures: `make bench` measures a baseline git ref from a worktree
of its own with this file of the working tree, run as the stack's launcher
(`python .../meter.py <jobline local args>`): it patches moto (pinned, the same in both trees),
then runs that tree's `jobline_local`. So it imports nothing of jobline, only moto and the standard
library, and both trees are measured by the same code.

Counted on every request moto accepts (after the local contracts, so a throttled call is not):
- DynamoDB capacity units of each write and read, by the rules of "DynamoDB read and write
  operations" (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html):
  a write costs 1 WCU per KB (rounded up, at least 1) of the larger of the item before and after
  (DeleteItem: the deleted item); a write whose condition fails still costs the existing item's
  size (at least 1); reads 1 RCU per 4 KB strongly consistent, half that eventually consistent;
  transactions twice. Item sizes per "DynamoDB item sizes and formats"
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html).
  Index writes per "Provisioned throughput considerations for global secondary indexes"
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations.Writes):
  one write when an item enters, leaves or changes a projected attribute in an index, two when an
  index key attribute changes; each sized by the projected entry (table keys + index keys +
  projected attributes).
- every other accepted call by `service:Operation`; SQS receives that returned no message apart;
  PutEvents entries not from an AWS service (`source` not `aws.*`); accepted submit calls with
  their time and job name (for "submitted twice" and the highest submit rate).
- DynamoDB writes, WCU (of which indexes) and failed conditional writes also by item kind and
  operation, `KIND:Operation` (the kind: the item's partition key up to its first `#`, e.g.
  `RUN:UpdateItem`; `-` for a key without one): whose writes cost what and whose conditions fail.
  A failed transaction counts on the kind of its first item.
The bench client's own calls (User-Agent `app/jobline-bench`) are not counted.
`GET /moto-api/bench-meter` answers the counts (a path the stack's API call log skips)."""

from __future__ import annotations

import base64
import contextlib
import json
import math
import re
import runpy
import sys
import threading
import time
from collections import Counter
from functools import lru_cache
from typing import Any

KB = 1024
READ_UNIT_BYTES = 4 * KB
METER_PATH = "/moto-api/bench-meter"
BENCH_USER_AGENT = "app/jobline-bench"
# Submit APIs whose accepted calls are kept one by one (time, the backend job's name).
SUBMITS = {("batch", "SubmitJob"): "jobName", ("batch", "SubmitServiceJob"): "jobName"}
SUBMITS |= {("sagemaker", "CreateProcessingJob"): "ProcessingJobName", ("glue", "StartJobRun"): "JobName"}
_SIGNIFICANT = re.compile(r"[1-9](?:\d*[1-9])?")


# ------------------------------------------------------------------ item sizes
def _value_size(value: dict[str, Any]) -> int:
    (kind, data), *_ = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        digits = _SIGNIFICANT.search(data.replace(".", "").replace("-", "").lstrip("+"))
        return math.ceil(len(digits.group(0)) / 2) + 1 if digits else 1
    if kind == "B":
        return len(_raw(data))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "NS":
        return sum(_value_size({"N": n}) for n in data)
    if kind == "BS":
        return sum(len(_raw(b)) for b in data)
    if kind == "L":
        return 3 + sum(_value_size(v) + 1 for v in data)
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(v) + 1 for k, v in data.items())
    raise ValueError(f"not a DynamoDB attribute value: {value!r}")


def _raw(data: bytes | str) -> bytes:
    return data if isinstance(data, bytes) else base64.b64decode(data)


def item_size(item: dict[str, Any] | None) -> int:
    """Bytes of an item in the wire format ({"name": {"S": "..."}}): names plus values, with
    3 bytes per List or Map and 1 per element in them."""
    return sum(len(name.encode()) + _value_size(value) for name, value in (item or {}).items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / KB))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


# ------------------------------------------------------------------ indexes
class Index:
    """A secondary index as DynamoDB bills it: its key attributes and what it projects."""

    def __init__(self, name: str, keys: list[str], table_keys: list[str], projection: dict[str, Any]) -> None:
        self.name = name
        self.keys = keys
        self.table_keys = table_keys
        self.projection_type = projection.get("ProjectionType", "ALL")
        self.included = list(projection.get("NonKeyAttributes", []))

    def entry(self, item: dict[str, Any]) -> dict[str, Any]:
        if self.projection_type == "ALL":
            return item
        wanted = {*self.table_keys, *self.keys, *(self.included if self.projection_type == "INCLUDE" else [])}
        return {name: value for name, value in item.items() if name in wanted}

    def writes(self, before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[int]:
        """The write units this index is charged for one item going from `before` to `after`."""
        old = self.entry(before) if before is not None and all(k in before for k in self.keys) else None
        new = self.entry(after) if after is not None and all(k in after for k in self.keys) else None
        if old is not None and new is not None:
            if any(old[k] != new[k] for k in self.keys):  # a key changed: out of the index, back in
                return [write_units(item_size(old)), write_units(item_size(new))]
            return [write_units(item_size(new))] if old != new else []
        return [write_units(item_size(entry)) for entry in (old, new) if entry is not None]


def write_cost(
    before: dict[str, Any] | None, after: dict[str, Any] | None, indexes: list[Index], *, failed: bool = False
) -> tuple[int, int]:
    """(table WCU, index WCU) of one item write. `after` None is a delete; `failed` a condition
    that did not hold (the item is unchanged, no index is written)."""
    if failed:
        return write_units(item_size(before)), 0
    table = write_units(max(item_size(before), item_size(after)))
    return table, sum(sum(index.writes(before, after)) for index in indexes)


# ------------------------------------------------------------------ counting
class Meter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()  # one DynamoDB write at a time: its before/after images are its own
        self.calls: Counter[str] = Counter()
        self.dynamodb: Counter[str] = Counter()
        self.by_kind: dict[str, Counter[str]] = {}  # "KIND:Operation" -> writes, wcu, index_wcu, failed_conditional
        self.sqs_empty_receives = 0
        self.custom_events = 0
        self.submits: list[tuple[float, str, str]] = []  # (time, operation, job name)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "calls": dict(self.calls),
                "dynamodb": dict(self.dynamodb),
                "dynamodb_by_kind": {kind: dict(amounts) for kind, amounts in sorted(self.by_kind.items())},
                "sqs_empty_receives": self.sqs_empty_receives,
                "custom_events": self.custom_events,
                "submits": list(self.submits),
            }

    def add_dynamodb(self, **amounts: float) -> None:
        with self.lock:
            for name, amount in amounts.items():
                self.dynamodb[name] += amount

    def add_write(self, kind: str, **amounts: int) -> None:
        with self.lock:
            counts = self.by_kind.setdefault(kind, Counter())
            for name, amount in amounts.items():
                counts[name] += amount


METER = Meter()


def item_kind(key: dict[str, Any]) -> str:
    """An item's kind: its partition key's string value up to the first `#` ("RUN#r1" -> "RUN")."""
    value = str(next(iter(next(iter(key.values()), {}).values()), "")) if key else ""
    return value.split("#", 1)[0] if "#" in value else "-"


def _table_schema(backend: Any, name: str) -> tuple[list[str], list[Index]]:
    table = backend.get_table(name)
    keys = [k for k in (table.hash_key_attr, table.range_key_attr) if k]
    indexes = [Index(i.name, i.schema_key_attrs, keys, i.projection or {}) for i in table.all_indexes()]
    return keys, indexes


def _stored(backend: Any, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    try:
        item = backend.get_item(table, key)
    except Exception:
        return None
    return item.to_json()["Attributes"] if item is not None else None


def _writes(params: dict[str, Any], operation: str) -> list[tuple[str, dict[str, Any]]]:
    """(table, key) of every item a write request touches."""
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        return [(params["TableName"], params.get("Key") or params.get("Item") or {})]
    if operation == "BatchWriteItem":
        return [
            (table, request.get("PutRequest", {}).get("Item") or request.get("DeleteRequest", {}).get("Key") or {})
            for table, requests in params.get("RequestItems", {}).items()
            for request in requests
        ]
    if operation == "TransactWriteItems":
        return [
            (action["TableName"], action.get("Key") or action.get("Item") or {})
            for entry in params.get("TransactItems", [])
            for kind, action in entry.items()
            if kind != "ConditionCheck"
        ]
    return []


def _images(backend: Any, targets: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any], list[Index]]]:
    """(table, key, indexes) of each item a write touches."""
    touched = []
    for table, item in targets:
        keys, indexes = _table_schema(backend, table)
        touched.append((table, {k: item[k] for k in keys if k in item}, indexes))
    return touched


def _measure_dynamodb(response: Any, operation: str, call: Any, meter: Meter) -> Any:
    params = getattr(response, "params", None) or {}
    backend = response.dynamodb_backend
    targets = _writes(params, operation)
    if not targets:
        result = call()
        with contextlib.suppress(Exception):  # the meter never changes an answer
            _count_reads(backend, params, operation, result, meter)
        return result
    with meter.write_lock:
        try:
            touched = [(*t, _stored(backend, t[0], t[1])) for t in _images(backend, targets)]
        except Exception:  # e.g. no such table: moto answers it as AWS would; nothing is written
            return call()
        result = call()
        status, body = result[0], str(result[2])
        failed = status >= 400 and "ConditionalCheckFailed" in body
        if status >= 400 and not failed:
            return result  # refused: nothing written, nothing billed here
        factor = 2 if operation == "TransactWriteItems" else 1
        table_wcu = index_wcu = 0
        for position, (table, key, indexes, before) in enumerate(touched):
            after = None if failed else _stored(backend, table, key)
            t, i = write_cost(before, after, indexes, failed=failed)
            table_wcu, index_wcu = table_wcu + t * factor, index_wcu + i * factor
            meter.add_write(
                f"{item_kind(key)}:{operation}",
                writes=1,
                wcu=(t + i) * factor,
                index_wcu=i * factor,
                failed_conditional=int(failed and position == 0),
            )
    meter.add_dynamodb(
        wcu=table_wcu + index_wcu, index_wcu=index_wcu, writes=len(touched), failed_conditional=int(failed)
    )
    return result


def _count_reads(backend: Any, params: dict[str, Any], operation: str, result: Any, meter: Meter) -> None:
    if result[0] >= 400 or operation not in ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"):
        return
    body = json.loads(result[2] or "{}")
    consistent = bool(params.get("ConsistentRead"))
    if operation == "GetItem":
        item = _stored(backend, params["TableName"], params.get("Key", {}))
        rcu = read_units(item_size(item), consistent)
    elif operation == "BatchGetItem":
        rcu = sum(
            read_units(item_size(_stored(backend, table, key)), bool(request.get("ConsistentRead")))
            for table, request in params.get("RequestItems", {}).items()
            for key in request.get("Keys", [])
        )
    elif operation == "TransactGetItems":
        rcu = sum(
            2 * read_units(item_size(_stored(backend, e["Get"]["TableName"], e["Get"]["Key"])), True)
            for e in params.get("TransactItems", [])
        )
    else:  # Query, Scan: the items read, summed, then rounded up to 4 KB
        rcu = read_units(sum(item_size(item) for item in body.get("Items", [])), consistent)
    kind = "strong_rcu" if consistent or operation == "TransactGetItems" else "eventual_rcu"
    meter.add_dynamodb(rcu=rcu, reads=1, **{kind: rcu})


@lru_cache(maxsize=64)
def _operation_names(service: str) -> dict[str, str]:
    import botocore.session

    try:
        model = botocore.session.get_session().get_service_model(service)
    except Exception:
        return {}
    return {name.lower(): name for name in model.operation_names}


def _operation(response: Any) -> str:
    """The operation's name as botocore spells it (moto's REST handlers answer `submitjob`)."""
    try:
        action = str(response._get_action())
    except Exception:
        return "Unknown"
    return _operation_names(response.service_name).get(action.replace("_", "").lower(), action)


def install(meter: Meter = METER) -> None:
    """Count every call moto accepts (idempotent); answer the counts at METER_PATH."""
    from moto.core.responses import BaseResponse
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    if getattr(BaseResponse.call_action, "jobline_meter", False):
        return
    original_call_action = BaseResponse.call_action

    def call_action(self: Any) -> Any:
        if BENCH_USER_AGENT in str(self.headers.get("User-Agent", "")):
            return original_call_action(self)
        service, operation = self.service_name, _operation(self)
        if service == "dynamodb":
            result = _measure_dynamodb(self, operation, lambda: original_call_action(self), meter)
        else:
            result = original_call_action(self)
        with meter.lock:
            meter.calls[f"{service}:{operation}"] += 1
        if result[0] < 400:
            with contextlib.suppress(Exception):  # the meter never changes an answer
                _note(self, service, operation, str(result[2]), meter)
        return result

    call_action.jobline_meter = True  # type: ignore[attr-defined]
    BaseResponse.call_action = call_action
    original_app = DomainDispatcherApplication.__call__

    def app(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == METER_PATH:
            data = json.dumps(meter.snapshot()).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
            return [data]
        return original_app(self, environ, start_response)

    DomainDispatcherApplication.__call__ = app


def _note(response: Any, service: str, operation: str, body: str, meter: Meter) -> None:
    if service == "sqs" and operation == "ReceiveMessage" and "MessageId" not in body:
        with meter.lock:
            meter.sqs_empty_receives += 1
    elif service == "events" and operation == "PutEvents":
        entries = response._get_param("Entries") or []
        custom = sum(1 for e in entries if not str(e.get("Source", "")).startswith("aws."))
        with meter.lock:
            meter.custom_events += custom
    elif (service, operation) in SUBMITS:
        name = str(response._get_param(SUBMITS[(service, operation)]) or "")
        with meter.lock:
            meter.submits.append((time.time(), operation, name))


if __name__ == "__main__":
    # Run as the stack's launcher: this file's directory must not shadow the measured tree's modules.
    sys.path.pop(0)
    install()
    sys.argv = ["jobline_local", *sys.argv[1:]]
    runpy.run_module("jobline_local", run_name="__main__", alter_sys=True)
