"""jobline on one machine: a local AWS (moto, pinned) with the whole stack of template.yaml, its
functions run as Lambda runs them, its schedules, and Batch jobs run as local processes.

    from jobline_local import LocalStack          # the stack as a child process (tests, scripts)
    from jobline_local import Stack, StackOptions  # the stack in this process (`jobline local`)
"""

from __future__ import annotations

from typing import Any

__all__ = ["LocalStack", "Stack", "StackOptions"]


def __getattr__(name: str) -> Any:
    # Lazy: the client side never imports moto, and `jobline local` only imports what it runs.
    if name == "LocalStack":
        from jobline_local.client import LocalStack

        return LocalStack
    if name in ("Stack", "StackOptions"):
        from jobline_local import stack

        return getattr(stack, name)
    raise AttributeError(f"module 'jobline_local' has no attribute {name!r}")
