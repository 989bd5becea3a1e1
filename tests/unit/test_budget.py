"""An invocation's time, step by step: the margin, and twice the slowest step so far."""

from __future__ import annotations

from jobline.budget import StepBudget


def budget(*seconds_left: float, margin: float = 10.0) -> StepBudget:
    left = iter(seconds_left)
    return StepBudget(lambda: next(left), margin)


def test_another_step_needs_the_margin() -> None:
    steps = budget(30.0, 10.0, 9.9)
    assert [steps.allows_another() for _ in range(2)] == [True, False]  # 30 → 10: a 20 s step
    steps = budget(11.0, 10.5, 9.9)
    assert [steps.allows_another() for _ in range(3)] == [True, True, False]


def test_another_step_needs_twice_the_slowest_so_far() -> None:
    steps = budget(100.0, 60.0)  # a 40 s step: 60 s left is under 80
    assert [steps.allows_another() for _ in range(2)] == [True, False]
    assert steps.slowest == 40.0


def test_no_deadline_always_allows_another() -> None:
    steps = StepBudget(lambda: float("inf"), 10.0)
    assert all(steps.allows_another() for _ in range(3))
    assert steps.slowest == 0.0
