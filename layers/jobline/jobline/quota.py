"""The quota governor: the pace every submitter of the stack keeps to a backend's submit API,
shared through the run table (docs/ARCHITECTURE.md "Submitting", docs/CONTRACTS.md).

Schedule. Time is cut into slots of `s = ceil(1.1 s / rate)` (whole microseconds); slot k starts at
`T_k = k·s`. A call takes a slot with one conditional PutItem of `QUOTA#<api>#<k>` (absent only),
so each slot is taken at most once, by whichever submitter's write lands first. The taker goes on
at an instant c (its clock) with `T_k <= c <= T_k + LATE`: it sleeps until T_k; a write (or sleep)
that ends after `T_k + LATE` gives the slot up, unused. A submitter first tries the first slot that
starts after now; losing it, the next one (or the first after now, if later); it stops, and the
message goes back to its queue, once the slot to try starts beyond the invocation's time left.

Bound. Any window `[a, a + 1 + SLACK)`, `SLACK = MARGIN - LATE`, holds at most `rate` calls: a call
at c in it took a slot k with `a - LATE <= c - LATE <= T_k <= c < a + 1 + SLACK`, so T_k lies in a
half-open interval of length `1 + MARGIN`; slot starts are s apart and `rate·s >= 1 + MARGIN`, so
it holds at most `ceil((1 + MARGIN) / s) <= rate` of them, each taken once. So any 1-second window
holds at most `rate`, even where one call's request reaches the API up to SLACK (60 ms) later than
another's after its slot. Token buckets refilled at `rate` (AWS's model, jobline_local.contracts.
throttling): n calls within d seconds pass a bucket of size b if `n <= b + rate·d`. A bucket of
size `rate`: n calls within d lie in floor(d) + 1 one-second windows, so `n <= rate·(floor(d) + 1)
<= rate + rate·d`. A smaller bucket: calls n slots apart are at least `n·s - LATE` apart, which
gives `b >= 0.9 + LATE·rate` (the n = 2 case): size 1 for rate <= 2, 2 up to 27, 3 up to 52.

Throughput. Each slot serves one call: while a submitter is always ready to take the next slot
(its write's round trip within LATE), every slot is used, `1/s = rate / 1.1`, 90.9% of the rate
(0.91/s at rate 1, 4.5/s at 5, 45/s at 50); a slot lost to a late write or an ended invocation is
lost capacity, never a call too many. Cost: one write per call uncontended, no read; a submitter
losing a slot writes again for the next, so n submitters at once cost up to n writes a call (each
submit queue's event source runs at most 2, template.yaml). A rate change takes effect at once;
during a deployment the old and new rates' slots overlap for a moment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from jobline.observability import count

MICROS = 1_000_000
# Slots are 1 + MARGIN seconds / rate long; a taker goes on at most LATE after its slot's start.
MARGIN_SECONDS = 0.1
LATE_SECONDS = 0.04
# A slot's item outlives its start by this much (TTL deletes it within days; a late taker of an
# old slot finds it taken, which is the same as finding it past).
ITEM_SECONDS = 60


class SlotTable(Protocol):
    def take_quota(self, api: str, slot: int, expires_at: int) -> bool: ...


@dataclass(frozen=True)
class Schedule:
    rate: int

    @property
    def slot_micros(self) -> int:
        return -(-round((1 + MARGIN_SECONDS) * MICROS) // self.rate)  # rounded up: never faster

    def start(self, slot: int) -> float:
        return slot * self.slot_micros / MICROS

    def next_after(self, now: float) -> int:
        """The first slot that starts after `now`. A clock read at a slot's start exactly (as after
        sleeping until it) is in that slot though the float product may fall a microsecond short."""
        return (round(now * MICROS) + 1) // self.slot_micros + 1


def take(
    table: SlotTable,
    api: str,
    rate: int,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    time_left: Callable[[], float],
) -> bool:
    """One call of `api` at `rate` per second: True once this submitter may make it now; False
    when no slot it could take starts within `time_left()` seconds."""
    schedule = Schedule(rate)
    slot = schedule.next_after(clock())
    while True:
        start = schedule.start(slot)
        if start - clock() >= time_left():
            count("SubmitCapacitySpent", Api=api)
            return False
        if table.take_quota(api, slot, int(start) + ITEM_SECONDS):
            now = clock()
            if now < start:
                sleep(start - now)
                now = clock()
            if now <= start + LATE_SECONDS:
                return True
            count("SubmitSlotMissed", Api=api)
        slot = max(slot + 1, schedule.next_after(clock()))
