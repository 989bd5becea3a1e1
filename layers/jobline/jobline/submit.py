"""The submitter: one message of a submit queue becomes the attempt's backend job, submitted once.

The state machine's Attempt state sends `{run_id, job, retry_count, token, request}` to the submit
queue of the run's backend API and waits for its task token. Per message:
1. a call of the API's rate: a slot of the schedule every submitter of the stack shares (jobline.quota),
   reserved now (starting after the claim is expected to end) and waited for right before the
   submit (step 3); none within the invocation's time left: the message goes back to its queue,
   nothing claimed (never a failure);
2. the claim: the attempt's ticket (its task token, for the state change handler), then the one
   conditional row write that makes the attempt the run's current one (jobline.dal.claim_attempt).
   Attempts are numbered by the row, not by `retry_count`: it counts every retrier's retries, so an
   SQS retry of the send skips a number (COST_AND_SCALE.md 3.2). A claim that fails is decided from
   the row it returns: a duplicate delivery or a newer token for the current attempt (look for the
   attempt's job before submitting), a skipped number (claim the next attempt), a stale message
   (an older token, a later attempt), a run that ended (nothing is submitted);
3. the submit, under the attempt's submit lease (at most one submitter at a time per attempt), and
   the job's id recorded on the attempt. A throttle or a server error sends the message back; a
   request AWS refuses ends the run FAILED "SubmitFailed" and fails the task (Jobline.SubmitFailed).
Every path that can submit an attempt someone may have submitted already asks the backend first
(Backend.find_submitted), so an attempt never gets two jobs, a lost response included.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from jobline import quota
from jobline.backends import BACKENDS, Backend
from jobline.backends.base import Clients, bounded
from jobline.clock import now_iso
from jobline.dal import RunTable
from jobline.errors import JoblineError, MalformedEvent
from jobline.observability import count, logger
from jobline.state_changes import answer_attempt
from jobline.status import ATTEMPT_ERROR_FOR, RANK_TERMINAL, Reason, RunStatus
from jobline.submit_request import SubmitMessage

if TYPE_CHECKING:
    from jobline.settings import Settings  # pydantic_settings: loaded by get_deps, not at import

SUBMIT_FAILED_ERROR = "Jobline.SubmitFailed"
# Answers of a backend's submit API that mean "not now": throttling, capacity and server errors
# (Batch, SageMaker and Glue API references, Errors / Common Errors). Any 5xx or 429 counts too.
DEFERRABLE_CODES = frozenset(
    {
        "TooManyRequestsException",  # Batch, 429
        "ServerException",  # Batch, 500
        "ThrottlingException",  # SageMaker, Glue
        "Throttling",
        "RequestLimitExceeded",
        "InternalFailure",  # SageMaker
        "ServiceUnavailable",
        "ResourceLimitExceeded",  # SageMaker: too many jobs at once, room comes back
        "InternalServiceException",  # Glue
        "OperationTimeoutException",  # Glue
        "ConcurrentRunsExceededException",  # Glue: the job is at MaxConcurrentRuns
    }
)
# SendTaskFailure answers meaning nothing waits for the token any more.
GONE_TOKEN_CODES = frozenset({"InvalidToken", "TaskTimedOut", "TaskDoesNotExist"})
# Claims tried per message: each failed claim moves on to a later attempt number at most once.
CLAIM_TRIES = 3
# A throttled or failing submit API is tried again this long (to twice this) later.
THROTTLED_RETRY_SECONDS = 5.0
VISIBILITY_LIMIT_SECONDS = 43_200  # ChangeMessageVisibility's maximum (12 hours)
TICKET_RETENTION_SECONDS = 7 * 86_400  # past the attempt's guard: late duplicate events, the reconciler


class Outcome(StrEnum):
    SUBMITTED = "submitted"
    FOUND = "found"  # the attempt's job existed already (a lost response, a duplicate): recorded
    DUPLICATE = "duplicate"  # the attempt's job is recorded: nothing to do
    STALE = "stale"  # an older token or an earlier attempt: nothing to do
    ENDED = "ended"  # the run ended: nothing submitted
    SUBMIT_FAILED = "submit_failed"  # AWS refused the request: the run ended FAILED


class SubmitDeferred(JoblineError):
    """The message goes back to its queue, to be tried again `after_seconds` from now: no submit
    capacity in this invocation, a throttle or a server error, or another submitter holds the attempt."""

    def __init__(self, reason: str, after_seconds: float) -> None:
        super().__init__(reason)
        self.after_seconds = after_seconds


@dataclass(frozen=True)
class Submitter:
    table: RunTable
    clients: Clients
    settings: Settings
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    leads: quota.Leads = quota.LEADS
    # The quota slot reserved per API before the claim (and when), awaited right before the submit.
    _slots: dict[str, tuple[int, float]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def process(self, message: SubmitMessage, time_left: Callable[[], float]) -> Outcome:
        """Submit the message's attempt once; SubmitDeferred hands the message back."""
        backend = BACKENDS.get(message.request.backend)
        if backend is None:
            raise MalformedEvent(f"unknown backend {message.request.backend!r} (one of {sorted(BACKENDS)})")
        reserved_at = self.clock()
        slot = self._reserve_quota(backend.submit_api, time_left)
        if slot is None:
            raise SubmitDeferred(f"no {backend.submit_api} capacity left in this invocation", _jittered(1))
        self._slots[backend.submit_api] = (slot, reserved_at)
        # Normally retry_count + 1; after a skipped number the row is behind it, and no attempt is
        # ever past the run's last (a failed claim at the last one finds the row's true place).
        attempt = min(message.retry_count + 1, message.request.max_attempts)
        for _ in range(CLAIM_TRIES):
            if not self._put_ticket(message, attempt):
                return Outcome.STALE
            lease = self._lease_until(time_left)
            row = self.table.claim_attempt(message.run_id, attempt, now_iso(), lease)
            if row is None:
                return self._submit(backend, message, attempt, lease)
            if not row:
                raise MalformedEvent(f"run {message.run_id} has no row")
            if int(row["status_rank"]) >= RANK_TERMINAL:
                return self._ended(row, message)
            current = int(row["attempt"])
            record = row.get("attempts", {}).get(str(current), {})
            if current > attempt:
                return Outcome.STALE
            ended = record.get("status") in (RunStatus.FAILED, RunStatus.TIMEOUT)
            if current < attempt and (current == 0 or ended):
                attempt = current + 1  # a skipped number: an SQS retry of the send counted a retry
                continue
            # This attempt already (a duplicate delivery), or a newer token for the live current one
            # (the send was retried after a lost response): this token is the one that waits now.
            if current < attempt and not self._put_ticket(message, current):
                return Outcome.STALE
            return self._ensure_submitted(backend, message, current, record, time_left)
        raise SubmitDeferred(
            f"run {message.run_id}: attempt {attempt} still contended after {CLAIM_TRIES} claims", _jittered(1)
        )

    def _reserve_quota(self, api: str, time_left: Callable[[], float]) -> int | None:
        """A slot of the API's rate, from the schedule every submitter of the stack shares, starting
        after the claim is expected to end."""
        rate = self.settings.submit_rate(api)
        return quota.reserve(self.table, api, rate, self.clock, time_left, self.leads.of(api))

    def _await_quota(self, api: str, lease: int) -> bool:
        """The reserved slot's start (or a later slot's if it was missed), right before the call."""
        rate, time_left = self.settings.submit_rate(api), lambda: lease - self.clock()
        reserved = self._slots.pop(api, None)
        if reserved is None:
            slot = quota.reserve(self.table, api, rate, self.clock, time_left)  # nothing in between
        else:
            slot, reserved_at = reserved
            self.leads.record(api, self.clock() - reserved_at)
        return slot is not None and quota.go(self.table, api, rate, slot, self.clock, self.sleep, time_left)

    def _put_ticket(self, message: SubmitMessage, attempt: int) -> bool:
        request = message.request
        ticket = {
            "task_token": message.token,
            "retry_count": message.retry_count,
            "max_attempts": request.max_attempts,
            "retry_on_timeout": request.retry_on_timeout,
            "backend": request.backend,
            "expires_at": int(self.clock()) + request.guard_timeout_seconds + TICKET_RETENTION_SECONDS,
        }
        return self.table.put_ticket(message.run_id, attempt, ticket)

    def _lease_until(self, time_left: Callable[[], float]) -> int:
        """The submit lease lasts as long as this invocation can: a redelivery comes after it."""
        return int(self.clock() + max(time_left(), 0)) + 1

    def _ensure_submitted(
        self,
        backend: Backend,
        message: SubmitMessage,
        attempt: int,
        record: dict[str, Any],
        time_left: Callable[[], float],
    ) -> Outcome:
        """The attempt was claimed before: make sure it has its job, and one only."""
        if record.get("backend_job_id"):
            return Outcome.DUPLICATE
        lease = self._lease_until(time_left)
        row = self.table.take_submit_lease(message.run_id, attempt, int(self.clock()), lease)
        if row is not None:
            if not row:
                raise MalformedEvent(f"run {message.run_id} has no row")
            if int(row["status_rank"]) >= RANK_TERMINAL:
                return self._ended(row, message)
            if row.get("attempts", {}).get(str(attempt), {}).get("backend_job_id"):
                return Outcome.DUPLICATE
            if int(row["attempt"]) != attempt:
                return Outcome.STALE
            held = int(row["attempts"][str(attempt)].get("lease_until", 0))
            raise SubmitDeferred(
                f"run {message.run_id}: another submitter holds attempt {attempt}", held - self.clock() + 1
            )
        found = backend.find_submitted(message.request.params, message.run_id, attempt, self.clients)
        if found is None:
            return self._submit(backend, message, attempt, lease)
        self.table.record_backend_job(message.run_id, attempt, found)
        logger.info("attempt's job found", extra={"run_id": message.run_id, "attempt": attempt, "job_id": found})
        return Outcome.FOUND

    def _submit(self, backend: Backend, message: SubmitMessage, attempt: int, lease: int) -> Outcome:
        """Submit under the attempt's lease (held until `lease`, epoch seconds)."""
        if not self._await_quota(backend.submit_api, lease):
            raise SubmitDeferred(f"no {backend.submit_api} capacity left in this invocation", _jittered(1))
        try:
            job_id = backend.submit(message.request.params, message.run_id, attempt, self.clients)
        except ClientError as error:
            if deferrable(error):
                raise SubmitDeferred(f"{backend.submit_api}: {error}", _jittered(THROTTLED_RETRY_SECONDS)) from error
            return self._refused(message, attempt, error)
        except BotoCoreError as error:  # no answer (a timeout, a lost connection): it may have run
            # Back once the lease ends: the redelivery then looks for the job before submitting.
            raise SubmitDeferred(f"{backend.submit_api}: {error}", lease - self.clock() + 1) from error
        self.table.record_backend_job(message.run_id, attempt, job_id)
        logger.info("attempt submitted", extra={"run_id": message.run_id, "attempt": attempt, "job_id": job_id})
        return Outcome.SUBMITTED

    def _refused(self, message: SubmitMessage, attempt: int, error: ClientError) -> Outcome:
        why = bounded(f"{error.response['Error'].get('Code')}: {error.response['Error'].get('Message', '')}")
        logger.warning("submit refused", extra={"run_id": message.run_id, "attempt": attempt, "reason": why})
        self.table.fail_submit(message.run_id, attempt, why, now_iso())
        self._fail_task(message.token, why)
        return Outcome.SUBMIT_FAILED

    def _ended(self, row: dict[str, Any], message: SubmitMessage) -> Outcome:
        """Nothing is submitted for a run that ended. Its end answers the message's token: the
        first answer may have been lost, or it went to an older token (the Attempt state retried
        a send whose response was lost, and the attempt ended before this newer message was
        claimed). A token nothing waits on any more refuses it, quietly."""
        reason = Reason._value2member_map_.get(row.get("reason", ""))
        if row.get("status") == RunStatus.SUCCEEDED or reason in ATTEMPT_ERROR_FOR:
            record = row.get("attempts", {}).get(str(row.get("attempt", 0)), {})
            ended = {
                "attempt": row.get("attempt", 0),
                "status": row["status"],
                "reason": row["reason"],
                "status_reason": record.get("status_reason"),
            }
            answer_attempt(self.clients("stepfunctions"), {"task_token": message.token}, ended)
        return Outcome.ENDED

    def hand_back(self, message: SubmitMessage, receipt_handle: str, after_seconds: float) -> None:
        """Make a deferred message visible again in `after_seconds` rather than after the queue's
        visibility timeout (ChangeMessageVisibility on the receipt Lambda's poller got). If that
        fails, the visibility timeout applies: later, never lost."""
        api = BACKENDS[message.request.backend].submit_api
        seconds = min(max(math.ceil(after_seconds), 0), VISIBILITY_LIMIT_SECONDS)
        try:
            self.clients("sqs").change_message_visibility(
                QueueUrl=self.settings.submit_queue_url(api), ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
        except (ClientError, BotoCoreError) as error:
            logger.warning("hand back: visibility unchanged", extra={"run_id": message.run_id, "reason": str(error)})

    def _fail_task(self, token: str, why: str) -> None:
        try:
            self.clients("stepfunctions").send_task_failure(taskToken=token, error=SUBMIT_FAILED_ERROR, cause=why)
        except ClientError as error:
            if error.response["Error"]["Code"] not in GONE_TOKEN_CODES:
                raise


def _jittered(seconds: float) -> float:
    """`seconds` to twice that: deferred messages of one burst do not all come back at once."""
    return seconds * (1 + random.random())  # noqa: S311 (jitter, not secrecy)


def deferrable(error: ClientError) -> bool:
    """Whether a submit API's error means "try again later" rather than "this request is refused"."""
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return error.response["Error"].get("Code") in DEFERRABLE_CODES or status >= 500 or status == 429


def process_message(
    submitter: Submitter, body: str, time_left: Callable[[], float], receipt_handle: str | None = None
) -> Outcome:
    """One submit queue message (its body as SQS gives it): parsed, processed, logged and counted;
    a deferred one raises SubmitDeferred, handed back to come again soon when its receipt is given.
    A malformed one raises pydantic's ValidationError or MalformedEvent."""
    message = SubmitMessage.model_validate_json(body)
    try:
        outcome = submitter.process(message, time_left)
    except SubmitDeferred as deferred:
        logger.info("submit deferred", extra={"run_id": message.run_id, "reason": str(deferred)})
        count("Submits", Outcome="deferred", Backend=message.request.backend)
        if receipt_handle is not None:
            submitter.hand_back(message, receipt_handle, deferred.after_seconds)
        raise
    logger.info("submit message", extra={"run_id": message.run_id, "outcome": outcome.value})
    count("Submits", Outcome=outcome.value, Backend=message.request.backend)
    return outcome
