"""Concurrency slots: who holds one, who waits, and the hand-off from one to the next.

`SLOT#<job>.holders` maps each run holding one of the job's slots to when it took it. A run takes
one in its execution's AcquireSlot (`size(holders) < max`); when the slots are full, its
WaitForSlot puts a task token on its own row (`slot_token`, `waiting_for = "slot#<job>"`), which
the sparse `by-waiting` index lists oldest first. Nothing else takes a slot for it, and only this
module releases one, from the run table's stream (RunStreamFunction) and the reconciler's sweep:
- a run with a slot limit (`slot_job`, `slot_max` on its row) ended, whoever ended it: its slot
  goes straight to the oldest waiter (one write: no newcomer passes the waiter in between), or is
  freed when nobody waits; a run that ended while waiting leaves the queue;
- a run started waiting: if a slot is free meanwhile (a release between its AcquireSlot and its
  registration), it gets one at once;
- a served waiter's token is answered (SendTaskSuccess), then its wait fields are cleared; one
  still listed while it holds a slot is answered again (a lost wake-up; a second answer to a
  woken one is refused, harmlessly). A waiter whose execution no longer waits (stopped, timed out)
  gives the slot back when its run has ended (else its end, a stream record too, releases it).
Waiters are served in creation order; the index is eventually consistent, so one just served may
still be listed and one just registered may not be yet (its own stream record serves it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamRecordModel
from botocore.exceptions import ClientError

from jobline.clock import now_iso
from jobline.dal import RunTable, waiting_for
from jobline.observability import count, logger
from jobline.state_changes import NOTHING_WAITS
from jobline.status import RANK_TERMINAL, Reason

# Waiters read per page of the by-waiting index (most hand-offs need the first one only).
WAITER_PAGE = 10


def ended(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    return bool(old and new) and int(old["status_rank"]) < RANK_TERMINAL <= int(new["status_rank"])


def registered(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    return bool(new and new.get("waiting_for") and new.get("slot_token")) and not (old or {}).get("slot_token")


@dataclass
class Slots:
    table: RunTable
    sfn: Any

    def on_change(self, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[str]:
        """One run table stream record: what it did to the slots (nothing for most records)."""
        if new is None or not new.get("slot_job"):
            return []
        if ended(old, new):
            return self.run_ended(new)
        if registered(old, new):
            return self.serve(new["slot_job"], int(new["slot_max"]))
        return []

    def run_ended(self, row: Mapping[str, Any]) -> list[str]:
        """The run's slot goes to the oldest waiter, or is freed; then free slots are filled."""
        job, run_id = row["slot_job"], row["run_id"]
        done: list[str] = []
        if token := row.get("slot_token"):  # it ended while waiting: it leaves the queue
            self.table.clear_waiter(run_id, token, None)
            done.append(f"{run_id} waits no more")
        served = {run_id}
        waiter = next((w for w in self.table.slot_waiters(job, WAITER_PAGE) if w["run_id"] != run_id), None)
        if waiter and self.table.hand_off_slot(job, run_id, waiter["run_id"], now_iso()):
            served.add(waiter["run_id"])
            done.append(f"{run_id}'s slot handed to {waiter['run_id']}")
            done += self._wake(job, waiter)
        elif self.table.release_slot(job, run_id):
            done.append(f"{run_id}'s slot released")
        return done + self.serve(job, int(row["slot_max"]), served=served)

    def serve(self, job: str, limit: int, served: set[str] | None = None) -> list[str]:
        """Give free slots to the oldest waiters, one after another, until none waits or the
        slots are full. `served`: runs this call has dealt with (the index may still list them)."""
        served = set(served or ())
        done: list[str] = []
        while waiters := [w for w in self.table.slot_waiters(job, WAITER_PAGE) if w["run_id"] not in served]:
            for waiter in waiters:
                served.add(waiter["run_id"])
                taken = self.table.take_slot(job, waiter["run_id"], limit, now_iso())
                if taken == "full":
                    return done  # the next release hands one on
                # "held": given before (its waker may have failed, or be waking it now: a second
                # answer is refused harmlessly), so it is woken again.
                done.append(f"{waiter['run_id']} {'took a free slot' if taken == 'taken' else 'holds a slot'}")
                done += self._wake(job, waiter)
        return done

    def _wake(self, job: str, waiter: Mapping[str, Any]) -> list[str]:
        """Answer a waiter that now holds a slot. When nothing waits on its token: a run that
        ended gives the slot back; one still live was woken by another writer (or will end, and
        its end releases the slot), and keeps it."""
        run_id, token = waiter["run_id"], waiter["slot_token"]
        try:
            self.sfn.send_task_success(taskToken=token, output=json.dumps({"slot": job, "run_id": run_id}))
        except ClientError as error:
            if error.response["Error"]["Code"] not in NOTHING_WAITS:
                raise
            row = self.table.get_run(run_id)
            if row is not None and int(row["status_rank"]) < RANK_TERMINAL:
                return []
            self.table.release_slot(job, run_id)
            if row is not None:
                self.table.clear_waiter(run_id, token, None)
            return [f"{run_id} no longer waits: its slot given back"]
        self.table.clear_waiter(run_id, token, Reason.SLOT_GRANTED.value)
        return [f"{run_id} woken"]

    def sweep(self, job: str) -> list[str]:
        """The reconciler's net for lost stream records: holders whose runs ended (or are gone)
        release; holders still waiting (woken, but the answer was lost) are woken again; free
        slots go to the oldest waiters."""
        done: list[str] = []
        for run_id in self.table.slot_holders(job):
            row = self.table.get_run(run_id)
            if row is None or int(row["status_rank"]) >= RANK_TERMINAL:
                if self.table.release_slot(job, run_id):
                    done.append(f"{run_id}'s slot released (the run had ended)")
            elif row.get("waiting_for") == waiting_for(job) and row.get("slot_token"):
                done += self._wake(job, row)
        waiters = self.table.slot_waiters(job, 1)
        oldest = waiters and self.table.get_run(waiters[0]["run_id"])
        return done + (self.serve(job, int(oldest["slot_max"])) if oldest else [])


def process_stream(event: Mapping[str, Any], slots: Slots) -> dict[str, Any]:
    """A DynamoDB stream batch -> slot changes; a partial batch response names the first record
    that failed (it and the records after it are delivered again: each change is idempotent)."""
    for raw in event.get("Records", []):
        record = DynamoDBStreamRecordModel.model_validate(raw)
        new = record.dynamodb.NewImage
        try:
            done = slots.on_change(record.dynamodb.OldImage, new)
        except Exception:
            logger.exception(
                "slot change failed; retried from this record", extra={"run_id": (new or {}).get("run_id")}
            )
            return {"batchItemFailures": [{"itemIdentifier": record.dynamodb.SequenceNumber}]}
        for change in done:
            logger.info("slot change", extra={"run_id": (new or {}).get("run_id"), "change": change})
            count("SlotChanges")
    return {"batchItemFailures": []}
