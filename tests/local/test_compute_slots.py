"""The local compute's slots serve jobs in the order they joined the line, as a Batch job queue
without a scheduling policy serves its jobs first in, first out."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from jobline_local.activity import Activity
from jobline_local.emulated.batch import LocalBatch
from jobline_local.emulated.batch_service_compute import LocalServiceJobs
from jobline_local.emulated.compute import FifoSlots, LocalService
from jobline_local.emulated.glue import LocalGlue
from jobline_local.emulated.sagemaker_processing import LocalProcessing
from tests.waiting import wait_until


def _takers(
    slots: FifoSlots, keys: list[str], cancelled: dict[str, bool] | None = None
) -> tuple[list[str], list[threading.Thread]]:
    """One thread per key, started in the reverse of the keys' order, each taking a slot and
    recording its turn (or its giving up) in `order`."""
    order: list[str] = []
    cancelled = cancelled or {}

    def take(key: str) -> None:
        if slots.take(key, lambda: cancelled.get(key, False)):
            order.append(key)
        else:
            order.append(f"{key} gave up")

    threads = [threading.Thread(target=take, args=(key,), daemon=True) for key in reversed(keys)]
    for thread in threads:
        thread.start()
    return order, threads


def test_jobs_take_slots_in_the_order_they_joined_not_the_order_their_threads_ask() -> None:
    slots = FifoSlots(1)
    assert slots.take("first", lambda: False)
    for key in ("a", "b", "c"):
        slots.join(key)
    order, threads = _takers(slots, ["a", "b", "c"])
    for expected in (["a"], ["a", "b"], ["a", "b", "c"]):
        slots.release()
        wait_until(lambda expected=expected: order == expected, 10, f"the slot to go to {expected[-1]}")
    for thread in threads:
        thread.join(5)


def test_a_job_cancelled_in_line_leaves_it_and_the_next_one_moves_up() -> None:
    slots = FifoSlots(1)
    assert slots.take("first", lambda: False)
    cancelled = {"a": False}
    for key in ("a", "b"):
        slots.join(key)
    order, _ = _takers(slots, ["a", "b"], cancelled)
    cancelled["a"] = True
    wait_until(lambda: order == ["a gave up"], 10, "the cancelled job to give up")
    slots.release()
    wait_until(lambda: order == ["a gave up", "b"], 10, "the next job to take the slot")


def test_a_job_whose_thread_fails_before_its_turn_leaves_the_line(tmp_path: Path) -> None:
    service = LocalService(
        "123456789012", "us-east-1", tmp_path / "jobs.yaml", tmp_path / "logs", {}, None, Activity(), slots=1
    )
    service._slots.join("broken")
    service._slots.join("next")

    def fail() -> None:
        raise RuntimeError("the job's description could not be read")

    service._start_thread("broken", fail)
    taken = threading.Event()
    service._start_thread("next", lambda: service._acquire_slot("next", lambda: False) and taken.set())
    assert taken.wait(10), "the job behind a failed one never got the slot"


def test_each_compute_puts_a_job_in_line_when_it_is_submitted(tmp_path: Path, monkeypatch: Any) -> None:
    """The line's order is the submits' order: a job joins it in the submitting call, before its
    own thread runs. A service job joins only once its instances are reserved (in line before, it
    could hold the head while waiting for instances a job behind it holds)."""
    args = ("123456789012", "us-east-1", tmp_path / "jobs.yaml", tmp_path / "logs", {}, None, Activity())
    submitted = {
        "batch": (LocalBatch(*args, slots=1), (SimpleNamespace(job_id="batch-1"),), "batch-1"),
        "glue": (LocalGlue(*args, slots=1), (None, SimpleNamespace(job_run_id="jr_1")), "jr_1"),
        "processing": (LocalProcessing(*args, slots=1), (SimpleNamespace(processing_job_name="p-1"),), "p-1"),
    }
    monkeypatch.setattr(threading.Thread, "start", lambda self: None)  # the job's thread never runs
    for service, call, key in submitted.values():
        service.submit(*call)
        assert list(service._slots._line) == [key], type(service).__name__
    training = LocalServiceJobs(*args, slots=1)
    training.submit(SimpleNamespace(job_id="sj-1", name="train"))
    assert list(training._slots._line) == []
