"""EventBridge Scheduler, locally: a local clock that can run faster than real time (or jump), and a
scheduler that fires the stack's schedules on it, by the expressions' one parser
(jobline.schedule_expressions, which the catalog validates schedules with)."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jobline.schedule_expressions import Expression, ExpressionError
from jobline_local.activity import Activity


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
