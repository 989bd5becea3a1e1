"""EventBridge Scheduler's schedule expressions: cron(...), rate(...) and at(...), parsed as
Scheduler reads them, and when each fires next. One parser for the catalog (a schedule that would
never fire, or that AWS would refuse, is refused when the catalog loads) and the local stack's
scheduler (which fires the stack's schedules with it).
https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTHS = {
    m: i for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1)
}
DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
SEARCH_YEARS = 5


class ExpressionError(ValueError):
    """An expression EventBridge Scheduler would refuse (or one that can never fire)."""


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
                if not 1 <= target <= 31:
                    raise ExpressionError(f"{part!r}: the day of month is outside 1-31")
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
                weekday, n = _number(day, DAYS), _number(nth, {})
                if not (1 <= weekday <= 7 and 1 <= n <= 5):
                    raise ExpressionError(f"{part!r}: use <day of week 1-7>#<1-5>")
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


def time_zone(name: str) -> ZoneInfo:
    """A schedule's ScheduleExpressionTimezone: an IANA name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ExpressionError(f"{name!r} is not an IANA time zone name (e.g. UTC, Europe/Paris)") from None


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT = {"minute": 60, "hour": 3600, "day": 86400}
_AT = re.compile(r"^at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)$")


@dataclass(frozen=True)
class Expression:
    """A schedule expression: next_after(t) is the first fire time strictly after t (None: never)."""

    text: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        """Parses the expression (and its time zone) now: an ExpressionError names what is wrong."""
        time_zone(self.timezone)
        try:
            self.next_after(datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 1, tzinfo=UTC))
        except ExpressionError:
            raise
        except ValueError as error:  # an at() date that does not exist, say
            raise ExpressionError(f"{self.text!r}: {error}") from None

    def next_after(self, after: datetime, start: datetime) -> datetime | None:
        """`start`: when the schedule began (rate schedules count from it)."""
        tz = time_zone(self.timezone)
        text = self.text
        if match := _RATE.match(text):
            period = int(match.group(1)) * _UNIT[match.group(2).rstrip("s")]
            if period <= 0:
                raise ExpressionError("a rate must be positive")
            elapsed = (after - start).total_seconds()
            periods = int(elapsed // period) + 1 if elapsed >= 0 else 1
            return start + timedelta(seconds=periods * period)
        if text.startswith("cron(") and text.endswith(")"):
            return Cron(text[5:-1]).next_after(after, tz)
        if match := _AT.match(text):
            when = datetime.fromisoformat(match.group(1)).replace(tzinfo=tz).astimezone(UTC)
            return when if when > after else None
        raise ExpressionError(
            f"{self.text!r} is not a schedule expression: use rate(N minutes|hours|days), "
            "cron(minutes hours day-of-month month day-of-week year) or at(yyyy-mm-ddThh:mm:ss)"
        )
