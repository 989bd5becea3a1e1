"""EventBridge Scheduler, locally: AWS's cron, rate and at expressions, a local clock that can run
faster than real time (or jump), and a scheduler that fires the stack's schedules on it."""

from __future__ import annotations

import calendar
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jobline_local.activity import Activity

MONTHS = {
    m: i for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1)
}
DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
SEARCH_YEARS = 5


class ExpressionError(ValueError):
    pass


def _aws_weekday(day: date) -> int:
    """AWS cron numbers days 1 (Sunday) to 7 (Saturday)."""
    return (day.weekday() + 1) % 7 + 1


def _number(text: str, names: dict[str, int]) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ExpressionError(f"{text!r} is not a number")
    return int(text)


def _values(field: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    """`*`, `a`, `a-b`, `a/s`, `a-b/s`, `*/s` and comma lists of them."""
    names = names or {}
    out: set[int] = set()
    for part in field.split(","):
        step, stepped = 1, "/" in part
        if stepped:
            part, step_text = part.split("/", 1)
            step = _number(step_text, {})
            if step < 1:
                raise ExpressionError(f"step {step} is not positive")
        if part == "*":
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _number(a, names), _number(b, names)
        else:
            start = _number(part, names)
            end = high if stepped else start
        if not (low <= start <= high and low <= end <= high):
            raise ExpressionError(f"{part!r} is outside {low}-{high}")
        if start <= end:
            out.update(range(start, end + 1, step))
        else:  # a wrapping range such as FRI-MON
            out.update(v for v in list(range(start, high + 1)) + list(range(low, end + 1)))
    return out


class Cron:
    """cron(minutes hours day-of-month month day-of-week year), as EventBridge reads it."""

    def __init__(self, body: str) -> None:
        fields = body.split()
        if len(fields) != 6:
            raise ExpressionError(f"cron needs 6 fields, got {len(fields)}")
        minutes, hours, self.dom, months, self.dow, years = fields
        if (self.dom == "?") == (self.dow == "?"):
            raise ExpressionError("exactly one of day-of-month and day-of-week must be '?'")
        self.minutes = sorted(_values(minutes, 0, 59))
        self.hours = sorted(_values(hours, 0, 23))
        self.months = _values(months, 1, 12, MONTHS)
        self.years = _values(years, 1970, 2199)
        self._day = self._day_of_month(self.dom) if self.dow == "?" else self._day_of_week(self.dow)

    @staticmethod
    def _day_of_month(field: str) -> Callable[[date], bool]:
        if field == "*":
            return lambda d: True
        tests: list[Callable[[date], bool]] = []
        for part in field.split(","):
            if part == "L":
                tests.append(lambda d: d.day == calendar.monthrange(d.year, d.month)[1])
            elif part == "LW":
                tests.append(lambda d: d == _last_weekday(d.year, d.month))
            elif part.endswith("W"):
                target = _number(part[:-1], {})
                tests.append(lambda d, t=target: d == _nearest_weekday(d.year, d.month, t))
            else:
                allowed = _values(part, 1, 31)
                tests.append(lambda d, a=allowed: d.day in a)
        return lambda d: any(t(d) for t in tests)

    @staticmethod
    def _day_of_week(field: str) -> Callable[[date], bool]:
        if field == "*":
            return lambda d: True
        tests: list[Callable[[date], bool]] = []
        for part in field.split(","):
            if "#" in part:
                day, nth = part.split("#", 1)
                weekday, n = _number(day, DAYS), int(nth)
                tests.append(lambda d, w=weekday, n=n: _aws_weekday(d) == w and (d.day - 1) // 7 + 1 == n)
            elif part == "L":
                tests.append(lambda d: _aws_weekday(d) == 7)
            elif part.endswith("L"):
                weekday = _number(part[:-1], DAYS)
                tests.append(
                    lambda d, w=weekday: _aws_weekday(d) == w and d.day + 7 > calendar.monthrange(d.year, d.month)[1]
                )
            else:
                allowed = _values(part, 1, 7, DAYS)
                tests.append(lambda d, a=allowed: _aws_weekday(d) in a)
        return lambda d: any(t(d) for t in tests)

    def next_after(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        local = after.astimezone(tz)
        day = local.date()
        for _ in range(366 * SEARCH_YEARS):
            if day.year in self.years and day.month in self.months and self._day(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
                        if candidate > local:
                            return candidate.astimezone(UTC)
            day += timedelta(days=1)
        return None


def _nearest_weekday(year: int, month: int, target: int) -> date:
    last = calendar.monthrange(year, month)[1]
    day = date(year, month, min(target, last))
    if day.weekday() == 5:  # Saturday -> Friday, unless that leaves the month
        return day - timedelta(days=1) if day.day > 1 else day + timedelta(days=2)
    if day.weekday() == 6:  # Sunday -> Monday, unless that leaves the month
        return day + timedelta(days=1) if day.day < last else day - timedelta(days=2)
    return day


def _last_weekday(year: int, month: int) -> date:
    day = date(year, month, calendar.monthrange(year, month)[1])
    while day.weekday() > 4:
        day -= timedelta(days=1)
    return day


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class Expression:
    """A schedule expression: next_after(t) is the first fire time strictly after t (None: never)."""

    text: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        self.next_after(datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 1, tzinfo=UTC))  # validates

    def next_after(self, after: datetime, start: datetime) -> datetime | None:
        """`start`: when the schedule began (rate schedules count from it)."""
        tz = ZoneInfo(self.timezone)
        text = self.text.strip()
        if match := _RATE.match(text):
            period = int(match.group(1)) * _UNIT[match.group(2).rstrip("s")]
            if period <= 0:
                raise ExpressionError("a rate must be positive")
            elapsed = (after - start).total_seconds()
            periods = int(elapsed // period) + 1 if elapsed >= 0 else 1
            return start + timedelta(seconds=periods * period)
        if text.startswith("cron(") and text.endswith(")"):
            return Cron(text[5:-1]).next_after(after, tz)
        if text.startswith("at(") and text.endswith(")"):
            when = datetime.fromisoformat(text[3:-1]).replace(tzinfo=tz).astimezone(UTC)
            return when if when > after else None
        raise ExpressionError(f"{self.text!r} is not a schedule expression")


class LocalClock:
    """Local time for the scheduler: starts at `start` (default now) and runs `speed` times as
    fast as real time; `advance` jumps it forward."""

    def __init__(self, start: datetime | None = None, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("the clock speed must be positive")
        self.speed = speed
        self._base = (start or datetime.now(UTC)).astimezone(UTC)
        self._t0 = time.monotonic()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._base + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)

    def restart(self) -> None:
        """Count from now again: the clock shows its start time when the stack is ready."""
        with self._lock:
            self._t0 = time.monotonic()

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._base += timedelta(seconds=seconds)
        return self.now()

    def real_seconds(self, local_seconds: float) -> float:
        return local_seconds / self.speed


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Tracked:
    key: tuple[str, str]
    arn: str
    expression: Expression
    target: dict[str, Any]
    start: datetime
    last: datetime
    state: str
    next: datetime | None


class LocalScheduler:
    """Fires the stack's EventBridge Scheduler schedules (read through the Scheduler API) on the
    local clock, sending each target its Input with Scheduler's placeholders substituted."""

    REFRESH_SECONDS = 2.0

    def __init__(
        self, clients: Any, clock: LocalClock, fire: Callable[[dict[str, Any], Any, str], None], activity: Activity
    ):
        self.scheduler = clients.client("scheduler")
        self.clock = clock
        self.fire_target = fire
        self.activity = activity
        self._tracked: dict[tuple[str, str], _Tracked] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_refresh = 0.0
        self.fired = 0

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def refresh(self) -> None:
        now = self.clock.now()
        seen = set()
        for group in self.scheduler.list_schedule_groups().get("ScheduleGroups", []):
            for summary in self.scheduler.list_schedules(GroupName=group["Name"]).get("Schedules", []):
                key = (summary["GroupName"], summary["Name"])
                seen.add(key)
                if key in self._tracked and self._tracked[key].state == summary.get("State", "ENABLED"):
                    continue
                detail = self.scheduler.get_schedule(GroupName=key[0], Name=key[1])
                try:
                    expression = Expression(
                        detail["ScheduleExpression"], detail.get("ScheduleExpressionTimezone", "UTC")
                    )
                except (ExpressionError, ValueError) as error:
                    self.activity.note("schedule", f"{key[1]}: {error}", logging.WARNING)
                    continue
                start = now
                tracked = _Tracked(
                    key, detail["Arn"], expression, detail["Target"], start, now, detail.get("State", "ENABLED"), None
                )
                tracked.next = expression.next_after(now, start)
                self._tracked[key] = tracked
                if tracked.next is not None and tracked.state == "ENABLED":
                    self.activity.note("schedule", f"{key[1]}: {expression.text} next fires at {iso(tracked.next)}")
        for key in set(self._tracked) - seen:
            del self._tracked[key]
        self._last_refresh = time.monotonic()

    def _loop(self) -> None:
        while not self._stopping.wait(0.1):
            try:
                if time.monotonic() - self._last_refresh > self.REFRESH_SECONDS:
                    self.refresh()
                self.tick()
            except Exception as error:
                self.activity.note("schedule", f"scheduler error: {error!r}", logging.ERROR)

    def tick(self) -> None:
        now = self.clock.now()
        for tracked in list(self._tracked.values()):
            if tracked.state != "ENABLED" or tracked.next is None or tracked.next > now:
                continue
            due, missed = tracked.next, 0
            while (following := tracked.expression.next_after(due, tracked.start)) is not None and following <= now:
                due, missed = following, missed + 1
            tracked.next = following
            self.fire(tracked, due, missed)

    def fire(self, tracked: _Tracked, scheduled: datetime, missed: int = 0) -> None:
        target = tracked.target
        execution_id = str(uuid.uuid4())
        text = target.get("Input", "{}")
        for placeholder, value in {
            "<aws.scheduler.scheduled-time>": iso(scheduled),
            "<aws.scheduler.execution-id>": execution_id,
            "<aws.scheduler.attempt-number>": "1",
            "<aws.scheduler.schedule-arn>": tracked.arn,
        }.items():
            text = text.replace(placeholder, value)
        try:
            payload = json.loads(text)
        except ValueError:
            payload = text
        self.fired += 1
        note = f" ({missed} earlier fire time(s) skipped by a clock jump)" if missed else ""
        self.activity.note("schedule", f"{tracked.key[1]}: fired for {iso(scheduled)}{note}")
        self.fire_target(target, payload, tracked.arn)
