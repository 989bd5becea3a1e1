"""What every contract shares: the call moto received, a refusal in AWS's words, and the record
of what was checked."""

from __future__ import annotations

import threading
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Call:
    """One request moto received, with its parameters as the service model names them."""

    service: str  # botocore's name: "batch", "stepfunctions", ...
    operation: str  # the model's name: "SubmitServiceJob"
    params: dict[str, Any]
    account: str
    region: str


@dataclass(frozen=True)
class Violation:
    """One rule of AWS's model the request breaks: `member` is the dotted path in the request."""

    service: str
    operation: str
    member: str
    rule: str
    message: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.service, self.operation, self.member, self.rule)


class Refusal(Exception):
    """AWS's answer to a request it refuses: the error code, HTTP status and message it sends."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


Check = Callable[[Call], None]


@dataclass
class Record:
    """Every call the contracts saw, and every violation found (refused or tolerated)."""

    validated: set[tuple[str, str]] = field(default_factory=set)
    violations: list[Violation] = field(default_factory=list)
    # (service, action, why) of requests to an AWS service that could not be mapped to the model.
    unvalidated: set[tuple[str, str, str]] = field(default_factory=set)
    # (service, operation, member, rule) let through although they break the model: only tests set
    # this, to hold jobline's own known defects to an exact list while they wait for a fix.
    tolerated: AbstractSet[tuple[str, str, str, str]] = frozenset()
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        with self.lock:
            self.validated.clear()
            self.violations.clear()
            self.unvalidated.clear()


record = Record()
