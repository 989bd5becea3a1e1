"""What the local stand-ins did, for people (the console and the demo's live view) and for
numbers (the benchmark): a bounded feed of lines and a set of counters."""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any

log = logging.getLogger("jobline_local")


class Activity:
    def __init__(self, size: int = 5000) -> None:
        self._lock = threading.Lock()
        self._lines: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)
        self._seq = 0
        self.counters: collections.Counter[str] = collections.Counter()

    def note(self, component: str, message: str, level: int = logging.INFO, **fields: Any) -> None:
        with self._lock:
            self._seq += 1
            self._lines.append(
                {"seq": self._seq, "time": time.time(), "component": component, "message": message, **fields}
            )
        log.log(level, "%-8s %s", component, message)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def since(self, seq: int) -> list[dict[str, Any]]:
        with self._lock:
            return [line for line in self._lines if line["seq"] > seq]
