"""The quota governor: the pace every submitter of the stack keeps to a backend's submit API,
shared through the run table (docs/DESIGN.md "Submitting", docs/CONTRACTS.md).

Schedule. Time is cut into slots of `s = (1 + M) / rate` seconds (whole microseconds, rounded up);
slot k starts at `T_k = k·s`. The margin M keeps room for a call's latency to vary on its way to
AWS: `1 / (rate - 1)` for rates 2 to 9 (slots of `1 / (rate - 1)` s: one slot's room), MARGIN at
rate 1 and from 10 (slots of `1.1 / rate`). A call takes a slot with one conditional PutItem of
`QUOTA#<api>#<k>` (absent only), so each slot is taken at most once, by whichever submitter's
write lands first. A submitter takes its slot before it claims the attempt (`reserve`: the first
slot that starts after now plus the lead, what this container's last calls took from reserving to
going (Leads), so the claim ends before its slot starts; losing it, or its answer coming past the
slot's start + LATE, the next one, or the first that starts one write's round trip after now if
later, so writes slower than a slot never starve a submitter; none starting within the
invocation's time left: the message goes back to its queue, nothing claimed)
and waits for it right before the submit call (`go`), so the only latency after the pacing is the
call's own. The taker goes on at an instant c (its clock) with `T_k <= c <= T_k + LATE`: it sleeps
until T_k; a write, claim or sleep that ends after `T_k + LATE` gives the slot up, unused, for the
first free one from then.

Bound. Any window `[a, a + 1 + SLACK)`, `SLACK = M - LATE`, holds at most `rate` calls: a call at c
in it took a slot k with `a - LATE <= c - LATE <= T_k <= c < a + 1 + SLACK`, so T_k lies in a
half-open interval of length `1 + M`; slot starts are s apart and `rate·s >= 1 + M`, so it holds
at most `ceil((1 + M) / s) <= rate` of them, each taken once. So any 1-second window holds at most
`rate` calls, even where one call's request reaches the API up to SLACK later than another's after
its slot (SLACK = 0.96 s at rate 2, 0.21 s at 5, 0.085 s at 9, 0.06 s at 1 and from 10). Token
buckets refilled at `rate` (AWS's model, jobline_local.contracts.throttling): n calls within d
seconds pass a bucket of size b if `n <= b + rate·d`. A bucket of size `rate`: n calls within d lie
in floor(d) + 1 one-second windows, so `n <= rate·(floor(d) + 1) <= rate + rate·d`. A smaller
bucket: m calls lie in m slots, so they span at least `(m - 1)·s - LATE`, which gives
`b >= 1 - M + LATE·rate` (the m = 2 case): size 1 up to rate 5, 2 up to 27, 3 up to 52.

Throughput. Each slot serves one call: while a submitter is always ready to take the next slot
(its write's round trip and its claim within LATE), every slot is used, `1/s = rate / (1 + M)`:
`rate - 1` per second for rates 2 to 9 (1/s at 2, 4/s at 5, 8/s at 9), 90.9% of the rate at 1
(0.91/s) and from 10 (9.1/s at 10, 45.5/s at 50). A slot missed, or reserved by a message that needs no submit (a
duplicate, a run that ended), is lost capacity, never a call too many.
Cost: one write per call uncontended, no read, while the write and the claim end within the
slot's start + LATE (the lead sees to it); a slot missed costs one more write (the slot then
taken is waited for with nothing in between), a slot lost to another submitter one more, so n
submitters at once cost up to n writes a call (each submit queue's event source runs at most
2, template.yaml). A rate change takes effect
at once; during a deployment the old and new rates' slots overlap for a moment.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from jobline.observability import count

MICROS = 1_000_000
# Slots are at least 1 + MARGIN seconds / rate long; a taker goes on at most LATE after its slot's start.
MARGIN_SECONDS = 0.1
ROOMY_BELOW = 10  # rates 2 to 9 keep one slot's room instead (1 / (rate - 1) > MARGIN)
LATE_SECONDS = 0.04
# A slot's item outlives its start by this much (TTL deletes it within days; a late taker of an
# old slot finds it taken, which is the same as finding it past).
ITEM_SECONDS = 60
# A reservation aims LEAD_ROOM times the longest of this container's last LEAD_SAMPLES
# reserve-to-go times ahead (room for the next to be slower; a slow outlier delays a few calls by
# at most LEAD_CAP, never misses their slots), and a new container's first one LEAD_CAP ahead: less
# than its cold start took, and no slot missed.
LEAD_SAMPLES = 8
LEAD_ROOM = 2
LEAD_CAP_SECONDS = 0.5


class SlotTable(Protocol):
    def take_quota(self, api: str, slot: int, expires_at: int) -> bool: ...


@dataclass(frozen=True)
class Schedule:
    rate: int

    @property
    def margin(self) -> float:
        return 1 / (self.rate - 1) if 2 <= self.rate < ROOMY_BELOW else MARGIN_SECONDS

    @property
    def slot_micros(self) -> int:
        return math.ceil((1 + self.margin) * MICROS / self.rate)  # rounded up: never faster

    def start(self, slot: int) -> float:
        return slot * self.slot_micros / MICROS

    def next_after(self, now: float) -> int:
        """The first slot that starts after `now`. A clock read at a slot's start exactly (as after
        sleeping until it) is in that slot though the float product may fall a microsecond short."""
        return (round(now * MICROS) + 1) // self.slot_micros + 1


class Leads:
    """Per API, how long this container's calls took from reserving their slot to going (the slot's
    write and the claim): one per Lambda container, kept across invocations, so a reservation aims
    twice that far ahead and its claim ends before the slot starts. Without it, a claim slower than
    LATE misses its slot and costs one more write (locally, where moto's writes take tens of ms)."""

    def __init__(self) -> None:
        self._recent: dict[str, deque[float]] = {}

    def of(self, api: str) -> float:
        recent = self._recent.get(api)
        return min(LEAD_ROOM * max(recent), LEAD_CAP_SECONDS) if recent else LEAD_CAP_SECONDS

    def record(self, api: str, seconds: float) -> None:
        self._recent.setdefault(api, deque(maxlen=LEAD_SAMPLES)).append(max(seconds, 0.0))


LEADS = Leads()  # this container's


def reserve(
    table: SlotTable,
    api: str,
    rate: int,
    clock: Callable[[], float],
    time_left: Callable[[], float],
    lead: float = 0.0,
) -> int | None:
    """The first slot of `api`'s schedule no other submitter has, starting after now + `lead`: taken,
    not yet waited for (the submitter claims its attempt meanwhile). None when none starts within
    `time_left()` seconds."""
    return _first_free(table, api, Schedule(rate), clock, time_left, lead)


def go(
    table: SlotTable,
    api: str,
    rate: int,
    slot: int,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    time_left: Callable[[], float],
) -> bool:
    """Wait for `slot`'s start, right before the call, and return within LATE of it: True. A slot
    missed (the claim took longer than it) is given up for the first free one from now; False when
    none starts within `time_left()` seconds."""
    schedule = Schedule(rate)
    while True:
        start = schedule.start(slot)
        now = clock()
        if now < start:
            sleep(start - now)
            now = clock()
        if now <= start + LATE_SECONDS:
            return True
        count("SubmitSlotMissed", Api=api)
        found = _first_free(table, api, schedule, clock, time_left)
        if found is None:
            return False
        slot = found


def _first_free(
    table: SlotTable,
    api: str,
    schedule: Schedule,
    clock: Callable[[], float],
    time_left: Callable[[], float],
    lead: float = 0.0,
) -> int | None:
    slot = schedule.next_after(clock() + lead)
    while True:
        start = schedule.start(slot)
        if start - clock() >= time_left():
            count("SubmitCapacitySpent", Api=api)
            return None
        sent = clock()
        if table.take_quota(api, slot, int(start) + ITEM_SECONDS) and clock() <= start + LATE_SECONDS:
            return slot
        # Lost, or its answer came past the slot's start + LATE: the next try aims one write's round
        # trip ahead, so a write slower than a slot still lands before its slot starts.
        answered = clock()
        slot = max(slot + 1, schedule.next_after(answered + (answered - sent)))
