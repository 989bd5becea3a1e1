"""Errors jobline raises on purpose. Each bad-input error carries a short code for metrics."""

from __future__ import annotations


class JoblineError(Exception):
    """Base class of every error jobline raises on purpose."""


class CatalogError(JoblineError):
    """The catalog file is unreadable or invalid; the message names the job and the field."""


class RowContended(JoblineError):
    """A run row kept changing under concurrent writers for as long as the caller could wait: the
    update was not made, and the caller hands its input back for redelivery."""


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
