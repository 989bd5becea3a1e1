"""Manifests: an S3 object read line by line in bounded memory, and each line made an item's arguments.

A manifest is CSV with a header (one record per line: a quoted field may not hold a line break)
or JSON Lines (one JSON object per line). Lines are numbered as an editor numbers them (the CSV
header is line 1); blank lines are no items. A line is read from a byte offset, so a reader that
ran out of time goes on where it stopped (S3 GetObject with a Range,
https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html), pinned to the object it
started with (its version id, else If-Match on its ETag: a replaced object is refused, never mixed).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from jobline.errors import MalformedEvent
from jobline.triggers import lookup

Format = Literal["csv", "jsonl"]
MAX_MANIFEST_BYTES = 1 << 30  # 1 GiB
MAX_ITEMS = 100_000  # items (non-blank lines, the CSV header aside)
MAX_LINE_BYTES = 64 * 1024  # an item's line; its run's arguments must fit one SQS message
CHUNK_BYTES = 256 * 1024


class ManifestRefused(MalformedEvent):
    """The manifest as a whole cannot be read: too large, not the format, its object changed."""

    code = "ManifestRefused"


class BadLine(MalformedEvent):
    """One line is not an item; the others still run."""

    code = "BadManifestLine"


@dataclass(frozen=True)
class ManifestObject:
    bucket: str
    key: str
    version_id: str | None
    etag: str
    size: int

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class Line:
    number: int  # 1-based, as an editor counts
    end: int  # byte offset just after the line (where the next one starts)
    text: bytes | None  # None: longer than MAX_LINE_BYTES (skipped to its end, never held)


def describe(s3: Any, bucket: str, key: str, version_id: str | None = None) -> ManifestObject:
    params = {"Bucket": bucket, "Key": key, **({"VersionId": version_id} if version_id else {})}
    try:
        head = s3.head_object(**params)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey", "403", "AccessDenied"):
            raise ManifestRefused(f"manifest s3://{bucket}/{key} cannot be read: {error}") from None
        raise
    return ManifestObject(bucket, key, head.get("VersionId") or version_id, head["ETag"], int(head["ContentLength"]))


def check_size(manifest: ManifestObject) -> None:
    if manifest.size > MAX_MANIFEST_BYTES:
        raise ManifestRefused(
            f"manifest {manifest.uri} is {manifest.size} bytes, over the {MAX_MANIFEST_BYTES} bytes (1 GiB) supported:"
            f" split it into manifests of at most {MAX_ITEMS} items"
        )


def lines(s3: Any, manifest: ManifestObject, offset: int = 0, number: int = 0) -> Iterator[Line]:
    """The lines from byte `offset` on (`number` lines come before it), each with where it ends."""
    if offset >= manifest.size:
        return
    params: dict[str, Any] = {"Bucket": manifest.bucket, "Key": manifest.key, "Range": f"bytes={offset}-"}
    params.update({"VersionId": manifest.version_id} if manifest.version_id else {"IfMatch": manifest.etag})
    try:
        body = s3.get_object(**params)["Body"]
    except ClientError as error:
        if error.response["Error"]["Code"] in ("PreconditionFailed", "NoSuchKey", "NoSuchVersion"):
            raise ManifestRefused(f"manifest {manifest.uri} changed or went away while it was read") from None
        raise
    buffer, start, overlong = b"", offset, False
    for chunk in body.iter_chunks(CHUNK_BYTES):
        buffer += chunk
        while (cut := buffer.find(b"\n")) >= 0:
            number += 1
            end = start + cut + 1
            yield Line(number, end, None if overlong or cut > MAX_LINE_BYTES else buffer[:cut])
            buffer, start, overlong = buffer[cut + 1 :], end, False
        if len(buffer) > MAX_LINE_BYTES:  # drop what cannot be an item; remember to reject the line
            start += len(buffer)
            buffer, overlong = b"", True
    if buffer or overlong:
        yield Line(number + 1, start + len(buffer), None if overlong else buffer)


def jsonl(items: list[Any]) -> bytes:
    """Items as a JSON Lines manifest (how a message's or an operator's items are read)."""
    return "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in items).encode()


def decode(line: Line) -> str:
    if line.text is None:
        raise BadLine(f"line {line.number} is over {MAX_LINE_BYTES} bytes")
    try:
        text = line.text.decode()
    except UnicodeDecodeError as error:
        raise BadLine(f"line {line.number} is not UTF-8: {error.reason} at byte {error.start}") from None
    return text.removeprefix("\ufeff").removesuffix("\r") if line.number == 1 else text.removesuffix("\r")


def csv_header(text: str) -> list[str]:
    try:
        header = next(csv.reader([text], strict=True))
    except csv.Error as error:
        raise ManifestRefused(f"the CSV header (line 1) does not parse: {error}") from None
    names = [name.strip() for name in header]
    if not all(names) or len(set(names)) != len(names):
        raise ManifestRefused(f"the CSV header (line 1) needs unique, non-empty column names, got {header}")
    return names


def item(text: str, number: int, format: Format, header: list[str] | None) -> dict[str, Any]:
    """One line as a mapping of its fields (CSV: an empty cell is no value)."""
    if format == "jsonl":
        try:
            value = json.loads(text)
        except ValueError as error:
            raise BadLine(f"line {number} is not JSON: {error}") from None
        if not isinstance(value, dict):
            raise BadLine(f"line {number} is a JSON {type(value).__name__}, not an object")
        return value
    assert header is not None
    try:
        values = next(csv.reader([text], strict=True))
    except csv.Error as error:
        raise BadLine(f"line {number} does not parse as CSV: {error}") from None
    if len(values) != len(header):
        raise BadLine(f"line {number} has {len(values)} fields, the header {len(header)}")
    return {name: value for name, value in zip(header, values, strict=True) if value != ""}


def arguments(fields: dict[str, Any], mapping: dict[str, str], number: int) -> dict[str, str]:
    """The item's arguments: through its trigger's mapping (parameter -> field or dotted path), or,
    without one, every field as the parameter of its name."""
    mapping = mapping or {name: name for name in fields}
    found = {name: _field(fields, path) for name, path in mapping.items()}
    return {name: _text(value, name, number) for name, value in found.items() if value is not None}


def _field(fields: dict[str, Any], path: str) -> Any:
    """A field by its name (a CSV column may hold dots), else by its dotted path."""
    return fields[path] if path in fields else lookup(fields, path)


def _text(value: Any, name: str, number: int) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        raise BadLine(f"line {number}: argument {name!r} must be a scalar, got {type(value).__name__}")
    return json.dumps(value)  # true, 5, 1.5 as JSON writes them
