"""The quota governor (jobline.quota): its slots in the run table, and simulated submitters at
arbitrary times, each a thread running the real `take` in virtual time, never putting more than
`rate` calls in any 1-second window (nor past AWS's token bucket) and, kept busy, using every slot."""

from __future__ import annotations

import heapq
import itertools
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from unittest import mock

import boto3
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from jobline import quota
from jobline.dal import RunTable
from jobline_local.bench import max_rate
from tests.aws_resources import REGION, TEST_ENVIRONMENT, create_run_table

RATES = [1, 2, 3, 5, 10, 20, 50]
HORIZON = 8.0  # virtual seconds each simulation runs
HANDOFF_SECONDS = 10.0  # real seconds a simulated thread may take to give its turn back (a hang)


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in TEST_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def table() -> Iterator[tuple[RunTable, list[str]]]:
    """The run table on moto and the DynamoDB operations made on it."""
    with mock_aws():
        client = boto3.session.Session(region_name=REGION).client("dynamodb")
        create_run_table(client, "runs")
        calls: list[str] = []
        client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
        yield RunTable(client, "runs"), calls


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_slot_is_taken_once_by_one_small_put_that_expires(table: tuple[RunTable, list[str]]) -> None:
    runs, calls = table
    assert runs.take_quota("SubmitJob", 7, 1_000)
    assert not runs.take_quota("SubmitJob", 7, 2_000)  # another submitter's write for the same slot
    assert runs.take_quota("SubmitServiceJob", 7, 1_000)  # each API has its own schedule
    item = runs._client.get_item(TableName="runs", Key={"pk": {"S": "QUOTA#SubmitJob#7"}})["Item"]
    assert item == {"pk": {"S": "QUOTA#SubmitJob#7"}, "expires_at": {"N": "1000"}}  # TTL attribute
    assert calls[:3] == ["PutItem"] * 3


def call(table: Any, clock: Clock, rate: int, claim: float = 0.0, left: float = 25.0) -> bool:
    """What the submitter does: reserve a slot, claim the attempt (`claim` seconds), go."""
    slot = quota.reserve(table, "SubmitJob", rate, clock, lambda: left)
    if slot is None:
        return False
    clock.sleep(claim)
    return quota.go(table, "SubmitJob", rate, slot, clock, clock.sleep, lambda: left)


def test_an_uncontended_call_costs_one_write_and_no_read(table: tuple[RunTable, list[str]]) -> None:
    runs, calls = table
    clock = Clock(1_800_000_000.3)
    granted = []
    for _ in range(12):
        assert call(runs, clock, 5, claim=0.01)
        granted.append(clock())
    assert calls == ["PutItem"] * 12
    # Consecutive slots, each used at its start: 1 / 0.25 s (rate 5: slots of 1 / (rate - 1) s).
    assert [round(t - granted[0], 6) for t in granted] == [round(0.25 * n, 6) for n in range(12)]


def test_a_lost_slot_moves_on_to_the_next_and_a_late_one_is_given_up() -> None:
    clock = Clock(1_800_000_000.0)
    schedule = quota.Schedule(2)
    first = schedule.next_after(clock())
    tried = []

    def take_quota(api: str, slot: int, expires_at: int) -> bool:
        tried.append(slot)
        if slot == first + 1:  # this write's answer comes past the slot's start + LATE
            clock.now = schedule.start(slot) + quota.LATE_SECONDS + 0.01
        return slot != first  # another submitter has the first

    assert call(SimpleNamespace(take_quota=take_quota), clock, 2)
    # The late slot went unused; its write took 2.05 s (sent at the first slot's start - 1 s,
    # answered 0.05 s into the second's), so the next try aims that far ahead: the slot after next.
    late = schedule.start(first + 1) + quota.LATE_SECONDS + 0.01
    aimed = schedule.next_after(late + (late - 1_800_000_000.0))
    assert tried == [first, first + 1, aimed]
    assert aimed == first + 4
    assert clock() == pytest.approx(schedule.start(aimed))


def test_a_slot_missed_by_a_slow_claim_is_given_up_for_the_next_free_one(table: tuple[RunTable, list[str]]) -> None:
    runs, calls = table
    clock = Clock(1_800_000_000.0)
    schedule = quota.Schedule(10)
    first = schedule.next_after(clock())
    assert runs.take_quota("SubmitJob", first + 4, 0)  # another submitter's, ahead
    claim = schedule.start(first + 3) - clock()  # past the reserved slot's start + LATE
    assert call(runs, clock, 10, claim=claim)
    assert clock() == pytest.approx(schedule.start(first + 5))
    assert calls == ["PutItem"] * 4  # the first slot, the one ahead, then two from the claim's end


def test_writes_slower_than_a_slot_still_get_one_soon() -> None:
    """Each write answers 0.2 s after it was sent, four slots of rate 20 (55 ms) and past LATE: a
    submitter aiming at the next slot after each answer would miss every slot until its time ran
    out; aiming one round trip ahead, its second write lands before its slot starts."""
    clock = Clock(1_800_000_000.0)
    tried = []

    def take_quota(api: str, slot: int, expires_at: int) -> bool:
        tried.append(slot)
        clock.now += 0.2
        return True

    deadline = clock() + 5.0
    slot = quota.reserve(SimpleNamespace(take_quota=take_quota), "SubmitJob", 20, clock, lambda: deadline - clock())
    assert slot is not None
    assert len(tried) == 2
    schedule = quota.Schedule(20)
    clock.sleep(max(0.0, schedule.start(slot) - clock()))
    assert schedule.start(tried[1]) <= clock() <= schedule.start(tried[1]) + quota.LATE_SECONDS


def test_a_reservation_aims_past_its_lead(table: tuple[RunTable, list[str]]) -> None:
    runs, _ = table
    clock = Clock(1_800_000_000.0)
    schedule = quota.Schedule(20)
    slot = quota.reserve(runs, "SubmitJob", 20, clock, lambda: 25.0, lead=0.3)
    assert slot == schedule.next_after(clock() + 0.3)
    assert schedule.start(slot - 1) <= clock() + 0.3 < schedule.start(slot)


def test_the_lead_is_twice_the_longest_of_the_last_calls_capped() -> None:
    leads = quota.Leads()
    assert leads.of("SubmitJob") == quota.LEAD_CAP_SECONDS  # a new container: no call yet
    for seconds in [0.02, 0.09, 0.03]:
        leads.record("SubmitJob", seconds)
    assert leads.of("SubmitJob") == 0.18  # twice the longest: room for the next to be slower
    assert leads.of("StartJobRun") == quota.LEAD_CAP_SECONDS  # per API
    for _ in range(quota.LEAD_SAMPLES):
        leads.record("SubmitJob", 0.01)
    assert leads.of("SubmitJob") == 0.02  # the slow one has aged out
    leads.record("SubmitJob", 30.0)
    assert leads.of("SubmitJob") == quota.LEAD_CAP_SECONDS


def test_no_slot_within_the_time_left_writes_nothing(table: tuple[RunTable, list[str]]) -> None:
    runs, calls = table
    clock = Clock(1_800_000_000.0)
    schedule = quota.Schedule(1)
    clock.now = schedule.start(schedule.next_after(clock())) - 0.5
    assert not call(runs, clock, 1, left=0.5)
    assert calls == []


@dataclass
class World:
    """Virtual time: each simulated submitter is a thread; one runs at a time, the others wait (in a
    sleep or a write) until the clock reaches their wake time, so every run is deterministic."""

    now: float = 0.0
    taken: set[int] = field(default_factory=set)
    grants: list[float] = field(default_factory=list)
    writes: int = 0
    _queue: list[tuple[float, int, threading.Event]] = field(default_factory=list)
    _order: Iterator[int] = field(default_factory=itertools.count)
    _turn: threading.Event = field(default_factory=threading.Event)
    _errors: list[BaseException] = field(default_factory=list)

    def wait_until(self, moment: float) -> None:
        wake = threading.Event()
        heapq.heappush(self._queue, (max(moment, self.now), next(self._order), wake))
        self._turn.set()
        assert wake.wait(HANDOFF_SECONDS)

    def sleep(self, seconds: float) -> None:
        self.wait_until(self.now + seconds)

    def run(self, submitters: list[tuple[float, Callable[[], None]]]) -> None:
        for arrival, body in submitters:
            start = threading.Event()
            heapq.heappush(self._queue, (arrival, next(self._order), start))
            threading.Thread(target=self._main, args=(start, body), daemon=True).start()
        while self._queue:
            self.now, _, wake = heapq.heappop(self._queue)
            self._turn.clear()
            wake.set()
            assert self._turn.wait(HANDOFF_SECONDS), "a simulated submitter hung"
        if self._errors:
            raise self._errors[0]

    def _main(self, start: threading.Event, body: Callable[[], None]) -> None:
        start.wait()
        try:
            body()
        except BaseException as error:  # handed to the scheduler's thread, raised there
            self._errors.append(error)
        finally:
            self._turn.set()


@dataclass
class SlotTable:
    """The run table's slot items as DynamoDB keeps them: a put lands (atomically, in arrival
    order) `send` seconds after it is made and its answer comes `reply` seconds later."""

    world: World
    latencies: Iterator[tuple[float, float]]

    def take_quota(self, api: str, slot: int, expires_at: int) -> bool:
        send, reply = next(self.latencies)
        self.world.sleep(send)
        self.world.writes += 1
        won = slot not in self.world.taken
        self.world.taken.add(slot)
        self.world.sleep(reply)
        return won


@dataclass(frozen=True)
class Plan:
    """One simulated submitter: when it starts, its writes' latencies, the time each claim takes
    (between its slot's reservation and the wait for it), the time each submit takes after its call
    went, each invocation's time budget and the pause between invocations."""

    arrival: float
    latencies: list[tuple[float, float]]
    claims: list[float]
    path: list[float]
    budgets: list[float]
    gaps: list[float]

    def body(self, world: World, rate: int) -> Callable[[], None]:
        table = SlotTable(world, itertools.cycle(self.latencies))
        claims, paths, budgets, gaps = (itertools.cycle(x) for x in (self.claims, self.path, self.budgets, self.gaps))

        def submitter() -> None:
            while world.now < HORIZON:
                deadline = world.now + next(budgets)
                left = lambda deadline=deadline: deadline - world.now  # noqa: E731
                while world.now < HORIZON:
                    slot = quota.reserve(table, "SubmitJob", rate, lambda: world.now, left)
                    if slot is None:
                        break
                    world.sleep(next(claims))
                    if not quota.go(table, "SubmitJob", rate, slot, lambda: world.now, world.sleep, left):
                        break
                    world.grants.append(world.now)
                    world.sleep(next(paths))
                world.sleep(next(gaps))

        return submitter


def simulate(rate: int, plans: list[Plan]) -> World:
    world = World()
    with mock.patch.object(quota, "count"):  # metrics are printed per call: not what is under test
        world.run([(plan.arrival, plan.body(world, rate)) for plan in plans])
    return world


def passes_bucket(times: list[float], rate: float, size: float) -> bool:
    """A token bucket (jobline_local.contracts.throttling's model: starts full, refills at `rate`)
    accepts every call at `times`."""
    tokens, last = size, -math.inf
    for t in sorted(times):
        tokens = min(size, tokens + (t - last) * rate)
        last = t
        if tokens < 1:
            return False
        tokens -= 1
    return True


seconds = st.floats(min_value=0, max_value=1, allow_nan=False)
any_plan = st.builds(
    Plan,
    arrival=st.floats(min_value=0, max_value=3),
    latencies=st.lists(st.tuples(seconds.map(lambda s: s * 0.3), seconds.map(lambda s: s * 0.3)), min_size=1),
    claims=st.lists(seconds.map(lambda s: s * 0.3), min_size=1),
    path=st.lists(seconds.map(lambda s: s * 0.5), min_size=1),
    budgets=st.lists(seconds.map(lambda s: s * 3), min_size=1),
    gaps=st.lists(seconds.map(lambda s: s * 0.5 + 0.05), min_size=1),
)


@settings(max_examples=80, deadline=None)
@given(rate=st.sampled_from(RATES), plans=st.lists(any_plan, min_size=1, max_size=5))
def test_any_submitters_at_any_times_keep_to_the_rate_in_every_window(rate: int, plans: list[Plan]) -> None:
    """Writes slow or fast (some return past their slot's LATE), submits, invocations ending with
    their budgets, many submitters at once: never more than `rate` calls in a 1-second window, nor
    in one SLACK longer (what a request's varying latency may add on the way to AWS)."""
    world = simulate(rate, plans)
    margin = quota.Schedule(rate).margin
    assert max_rate(world.grants) <= rate
    assert max_rate(world.grants, 1 + margin - quota.LATE_SECONDS - 1e-6) <= rate  # SLACK longer
    assert passes_bucket(world.grants, rate, rate)  # AWS Batch's SubmitJob bucket: size = rate
    assert passes_bucket(world.grants, rate, max(1, math.ceil(1 - margin + quota.LATE_SECONDS * rate)))
    assert len(world.grants) <= len(world.taken) <= world.writes


@st.composite
def busy_submitters(draw: st.DrawFn) -> tuple[int, list[Plan]]:
    """Submitters always ready again before their turn comes: each write's round trip and each
    claim within LATE and a quarter slot, each submit within half a slot per submitter."""
    rate = draw(st.sampled_from(RATES))
    count = draw(st.integers(min_value=1, max_value=4))
    slot = quota.Schedule(rate).slot_micros / quota.MICROS
    trip = min(quota.LATE_SECONDS, slot / 4) / 3
    leg = st.floats(min_value=0, max_value=trip)
    plan = st.builds(
        Plan,
        arrival=st.floats(min_value=0, max_value=0.5),
        latencies=st.lists(st.tuples(leg, leg), min_size=1),
        claims=st.lists(leg, min_size=1),
        path=st.lists(st.floats(min_value=0, max_value=count * slot / 2), min_size=1),
        budgets=st.just([2 * HORIZON]),
        gaps=st.just([0.0]),
    )
    return rate, draw(st.lists(plan, min_size=count, max_size=count))


@settings(max_examples=40, deadline=None)
@given(busy=busy_submitters())
@example(busy=(1, [Plan(0.0, [(0.0, 0.0)], [0.0], [path], [2 * HORIZON], [0.0]) for path in (0.0, 0.0, 0.012124, 0.0)]))
def test_busy_submitters_use_every_slot(busy: tuple[int, list[Plan]]) -> None:
    """The sustained throughput: one call per slot."""
    rate, plans = busy
    world = simulate(rate, plans)
    # From a moment after the last submitter came to a moment before they stop.
    schedule = quota.Schedule(rate)
    first, last = schedule.next_after(max(p.arrival for p in plans) + 0.5), schedule.next_after(HORIZON - 0.5)
    assert set(range(first, last)) <= world.taken  # none skipped
    # A grant to the microsecond, as slots are: the virtual clock's sums of floats can end a sleep
    # until a slot's start an ulp before it (7.699999999999999 for 7.7).
    grants = [t for t in world.grants if schedule.start(first) <= round(t, 6) < schedule.start(last)]
    assert len(grants) == last - first  # none given up
    assert (len(grants) - 1) / (grants[-1] - grants[0]) >= 0.98 * quota.MICROS / schedule.slot_micros


def test_the_slots_never_round_the_rate_up_and_give_the_stated_throughput() -> None:
    for rate in [*RATES, 7, 9, 300, 1000]:
        schedule = quota.Schedule(rate)
        assert rate * schedule.slot_micros >= (1 + schedule.margin) * quota.MICROS
        assert schedule.next_after(schedule.start(12_345)) == 12_346
    per_second = {rate: quota.MICROS / quota.Schedule(rate).slot_micros for rate in (1, 2, 5, 9, 10, 50)}
    assert {rate: round(calls, 2) for rate, calls in per_second.items()} == {
        1: 0.91,
        2: 1.0,
        5: 4.0,
        9: 8.0,
        10: 9.09,
        50: 45.45,
    }
