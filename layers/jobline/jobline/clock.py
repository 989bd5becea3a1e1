"""Timestamps as jobline writes them everywhere (rows, events, cursors): ISO 8601, UTC, milliseconds, "Z"."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_z(moment: datetime) -> str:
    """An aware datetime as ISO 8601 in UTC with milliseconds, e.g. 2026-11-21T00:00:00.000Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso_z(datetime.now(UTC))


def from_epoch_ms(value: int | float | str | None) -> str | None:
    """Epoch milliseconds (as AWS's events carry them) as ISO-Z; an ISO string or None passes as is."""
    if value is None or isinstance(value, str):
        return value
    return iso_z(datetime.fromtimestamp(value / 1000, UTC))


def epoch_ms(value: object) -> object:
    """A datetime (as boto3 returns AWS's times) as epoch milliseconds, the shape events carry; else as is."""
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else value


def parse_iso_z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
