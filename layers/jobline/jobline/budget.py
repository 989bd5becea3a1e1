"""An invocation's time, spent step by step: a loop over records or rows starts its next step only
while the invocation has a margin left and twice its slowest step so far, so a slow step does not
run into Lambda's timeout (which would lose what the invocation did, or redo it)."""

from __future__ import annotations

import math
from collections.abc import Callable


class StepBudget:
    """`time_left()` in seconds; a step is the time between two calls of `allows_another()`."""

    def __init__(self, time_left: Callable[[], float], margin_seconds: float) -> None:
        self._time_left = time_left
        self.margin_seconds = margin_seconds
        self.left = math.inf  # seconds left at the last check
        self.slowest = 0.0  # the longest step so far

    def allows_another(self) -> bool:
        left = self._time_left()
        if math.isfinite(self.left):
            self.slowest = max(self.slowest, self.left - left)
        self.left = left
        return left >= max(self.margin_seconds, 2 * self.slowest)
