"""Step Functions' execution history cap. Standard workflow quotas, "Maximum execution history
size: 25,000 events. If the execution history reaches this quota, the execution will fail."
https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html
moto's engine keeps adding events forever; here a state that would start with the history at
the cap fails the execution instead (States.Runtime, as AWS names no error for it). The state
data limit (256 KiB, States.DataLimitExceeded) is moto's own (State._verify_size_quota)."""

from __future__ import annotations

from typing import Any

HISTORY_CAP = 25_000
_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.state import CommonStateField
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    original = CommonStateField._eval_body

    def eval_body(self: Any, env: Any) -> None:
        events = len(env.event_manager._history_event_list)
        if events >= HISTORY_CAP - 1:  # room for the ExecutionFailed event itself
            error = StatesErrorNameType.StatesRuntime
            cause = f"The execution history reached the quota of {HISTORY_CAP} events."
            raise FailureEventException(
                failure_event=FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=error),
                    event_type=HistoryEventType.ExecutionFailed,
                    event_details=EventDetails(
                        executionFailedEventDetails=ExecutionFailedEventDetails(error=error.to_name(), cause=cause)
                    ),
                )
            )
        original(self, env)

    CommonStateField._eval_body = eval_body
    _installed = True
