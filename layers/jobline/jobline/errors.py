"""Errors jobline raises on purpose. Each bad-input error carries a short code for metrics."""

from __future__ import annotations


class JoblineError(Exception):
    """Base class of every error jobline raises on purpose."""


class CatalogError(JoblineError):
    """The catalog file is unreadable or invalid; the message names the job and the field."""


class RejectedInput(JoblineError):
    """A trigger or request that jobline refuses. `code` becomes the metric dimension."""

    code = "Rejected"


class UnknownJobError(RejectedInput):
    code = "UnknownJob"


class NoMatchingJob(RejectedInput):
    code = "NoMatchingJob"


class MalformedEvent(RejectedInput):
    code = "MalformedEvent"


class InvalidArguments(RejectedInput):
    code = "InvalidArguments"
