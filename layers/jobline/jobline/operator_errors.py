"""Errors of the operator commands (CLI and HTTP API), beside the bad-input errors of jobline.errors."""

from __future__ import annotations

from jobline.errors import JoblineError, RejectedInput


class InvalidRequest(RejectedInput):
    """A malformed or out-of-range request: a bad status, time, page size, token or id count."""

    code = "InvalidRequest"


class NotFound(JoblineError):
    code = "NotFound"


class RunNotFound(NotFound):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run {run_id!r} (run ids look like <job>-<20 hex digits>, see `jobline runs list`)")


class JobNotFound(NotFound):
    pass


class Conflict(JoblineError):
    """The request is well formed but the run's state refuses it (e.g. retry of a live run)."""

    code = "Conflict"


class AlreadyFinished(Conflict):
    code = "AlreadyFinished"
