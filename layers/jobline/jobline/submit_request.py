"""What travels to the submitter: the run's submit request (built once per run by jobline.runs, in
the execution input) and the message the state machine's Attempt state sends with it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# SendTaskSuccess / SendTaskFailure take task tokens of 1-2,048 characters
# (https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskFailure.html).
TASK_TOKEN_LIMIT = 2048


class SubmitRequest(BaseModel):
    """A run's submit request: its backend's API request without each attempt's own values
    (`params`, Backend.submit_request), and what the attempt's ticket records for the event handler."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str
    max_attempts: int = Field(ge=1, le=10)
    retry_on_timeout: bool
    guard_timeout_seconds: int = Field(ge=1)
    params: dict[str, Any]


class SubmitMessage(BaseModel):
    """One message of a submit queue, as the Attempt state sends it: `retry_count` is the state's
    `$$.State.RetryCount` (every retrier's retries), `token` its `$$.Task.Token`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(min_length=1, max_length=80)  # an execution name
    job: str = Field(min_length=1)
    retry_count: int = Field(ge=0)
    token: str = Field(min_length=1, max_length=TASK_TOKEN_LIMIT)
    request: SubmitRequest
