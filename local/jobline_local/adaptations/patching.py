"""How an adaptation changes moto: every attribute it replaces or adds is recorded with moto's
own value first, so that the tests can call moto's original and see that the gap is still there."""

from __future__ import annotations

from typing import Any

# (class or module, attribute) -> moto's own value, before any adaptation replaced it.
originals: dict[tuple[Any, str], Any] = {}


def replace(owner: Any, name: str, value: Any) -> None:
    originals.setdefault((owner, name), getattr(owner, name))
    setattr(owner, name, value)


def add(owner: Any, name: str, value: Any) -> None:
    """Something moto lacks: its original is recorded as None."""
    originals.setdefault((owner, name), getattr(owner, name, None))
    setattr(owner, name, value)
