"""The quota governor: every submitter of the stack takes its calls from one schedule of slots per
submit API (jobline.quota), so two processors at once still submit no faster than the stack's rate."""

from __future__ import annotations

import threading

import pytest
from botocore.config import Config

from jobline import quota
from jobline.submit import Outcome, Submitter, process_message
from tests.unit.submitting import Stack, stack, time_left

__all__ = ["stack"]
RATE = 2
RUNS = 8


def test_two_concurrent_processors_hold_the_rate_together(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The local SubmitJob quota is AWS's token bucket at the same rate, of size rate: no call is
    throttled (the SDK's retries off), each slot serves one call, the slots are the rate's."""
    monkeypatch.setenv("JOBLINE_QUOTA_SUBMITJOB", str(RATE))
    no_retries = stack.session.client("batch", config=Config(retries={"total_max_attempts": 1}))
    stack._clients["batch"] = no_retries
    runs = [stack.start("word-count") for _ in range(RUNS)]
    bodies = [stack.message(run_id) for run_id in runs]
    settings = stack.settings.model_copy(update={"submit_job_rate": RATE})
    outcomes: list[object] = []

    def processor(share: list[str]) -> None:
        submitter = Submitter(stack.table, stack.client, settings)  # the real clock, real sleeps
        for body in share:
            try:
                outcomes.append(process_message(submitter, body, time_left()))
            except Exception as error:
                outcomes.append(error)

    threads = [threading.Thread(target=processor, args=(bodies[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == [Outcome.SUBMITTED] * RUNS
    assert sorted(job["jobName"] for run_id in runs for job in stack.batch_jobs(run_id)) == sorted(
        f"{run_id}-1" for run_id in runs
    )
    items = stack.client("dynamodb").scan(
        TableName="runs",
        FilterExpression="begins_with(pk, :quota)",
        ExpressionAttributeValues={":quota": {"S": "QUOTA#SubmitJob#"}},
    )["Items"]
    assert len(items) >= RUNS  # a slot per submit, and any slot given up by a late write or claim
    assert all(item["expires_at"]["N"] for item in items)


def quota_writes(stack: Stack) -> int:
    items = stack.client("dynamodb").scan(
        TableName="runs",
        FilterExpression="begins_with(pk, :quota)",
        ExpressionAttributeValues={":quota": {"S": "QUOTA#SubmitJob#"}},
    )["Items"]
    return len(items)


class NoLead(quota.Leads):
    """A container that aims at the next slot whatever its claims took (the control)."""

    def of(self, api: str) -> float:
        return 0.0


@pytest.mark.parametrize(("leads", "writes"), [(None, 4), (NoLead(), 8)])
def test_a_container_aims_past_its_claims_and_misses_no_slot(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, leads: quota.Leads | None, writes: int
) -> None:
    """Claims slower than LATE (0.2 s, moto's writes on a loaded machine) at rate 20 (55 ms slots):
    a new container's first reservation aims LEAD_CAP ahead, the next ones past the claims it saw,
    so each call writes one slot. The control, aiming at the next slot, misses every one: two
    writes a call."""
    slow_claim = stack.table.claim_attempt

    def claim_attempt(*args: object, **kwargs: object) -> object:
        stack.clock.advance(0.2)
        return slow_claim(*args, **kwargs)

    monkeypatch.setattr(stack.table, "claim_attempt", claim_attempt)
    runs = [stack.start("word-count") for _ in range(4)]
    for run_id in runs:
        submitter = stack.submitter(submit_job_rate=20)  # one per message, as the handler makes them
        if leads is not None:
            submitter = Submitter(stack.table, stack.client, submitter.settings, stack.clock, stack.clock.sleep, leads)
        assert process_message(submitter, stack.message(run_id), time_left()) == Outcome.SUBMITTED
    assert quota_writes(stack) == writes
    if leads is None:
        assert stack.leads.of("SubmitJob") == pytest.approx(quota.LEAD_ROOM * 0.2)  # twice the claims seen
