"""Adaptations of moto's callback Tasks (`.waitForTaskToken`): a task token per try, closed when
the try ends, and StopExecution ending a waiting task at once.

AWS's contract (Step Functions developer guide, "Wait for a Callback with Task Token",
https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token;
API reference SendTaskSuccess/SendTaskFailure, errors): the workflow pauses until the token is
returned; a token whose task "has already been closed" is answered `TaskTimedOut`, an unknown one
`InvalidToken`."""

from __future__ import annotations

from typing import Any

from jobline_local.adaptations.patching import add, replace

CLOSED_TASK = "The task token has either expired or the task associated with the token has already been closed."


# token -> the callback pool of the execution it belongs to: an answer finds its task at once
# (moto asks every execution in turn: 10 ms per answer with 10,000 executions kept).
_pools: dict[str, Any] = {}


class TaskAbandoned(Exception):
    """A callback task's wait ended because its execution stopped: no outcome to record."""


def waits_for_token(task: Any) -> bool:
    """A task with a token (moto's rule: `.waitForTaskToken`, and `.sync` of a service offering it)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition

    return task._is_integration_pattern() and ResourceCondition.WaitForTaskToken in task._supported_integration_patterns


def adapt_callback_token_per_try() -> None:
    """moto 5.2.5 makes a callback Task's token once per state entry, before the Retry loop: every
    try of a retried Task gets the same `$$.Task.Token`, and the endpoint keeps the first answer,
    so the second try returns the first try's outcome at once (a failure consumed twice). On AWS
    each try is a new task with its own token. Here each try makes a fresh token, and the try's
    end closes it: a late or duplicate answer gets `TaskTimedOut`, as AWS answers for a closed task."""
    from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackConsumerTimeout

    moto_eval_body = StateTaskServiceCallback._eval_body
    evaluate_try = ExecutionState._evaluate_with_timeout

    def eval_body(self: Any, env: Any) -> None:
        if not waits_for_token(self):
            return moto_eval_body(self, env)
        # moto's body without its token: each try makes its own (evaluate_with_timeout).
        self._assert_integration_pattern_is_supported()
        super(StateTaskServiceCallback, self)._eval_body(env=env)
        env.states.context_object.context_object_data.pop("Task", None)
        return None

    def evaluate_with_timeout(self: Any, env: Any) -> None:
        if not waits_for_token(self):
            return evaluate_try(self, env)
        token = env.states.context_object.update_task_token()
        endpoint = env.callback_pool_manager.add(token)
        _pools[token] = env.callback_pool_manager
        try:
            return evaluate_try(self, env)
        except TaskAbandoned:
            return None  # the execution stopped: moto records ExecutionAborted, nothing for the task
        finally:
            endpoint.report(CallbackConsumerTimeout())  # closed: answers now get TaskTimedOut
            endpoint.interrupt_all()  # a waiter left behind by a timed-out try ends too

    replace(StateTaskServiceCallback, "_eval_body", eval_body)
    add(StateTaskServiceCallback, "_evaluate_with_timeout", evaluate_with_timeout)


def adapt_stop_ends_callback_wait() -> None:
    """StopExecution on moto 5.2.5 leaves an execution whose callback Task waits RUNNING until the
    token is answered (and a later SendTaskFailure then ends it FAILED). AWS aborts it at once
    (API reference, StopExecution) and closes the task. Stopping wakes every callback task still
    waiting in the execution; the waiting try then ends without an outcome (TaskAbandoned) and its
    token is closed (adapt_callback_token_per_try).

    Answers to a token: moto's SendTaskSuccess looks at running executions only (a closed task of a
    stopped execution got `InvalidToken`), its closed-task check never matches (every closed token
    got `TaskDoesNotExist`, AWS's answer for an unknown activity), and its SendTaskFailure handler
    drops `cause`. Here both look at every execution and answer `TaskTimedOut` for a closed task,
    `InvalidToken` for an unknown token, and the cause reaches the execution."""
    from moto.core.responses import EmptyResult
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.eval.callback.callback import (
        CallbackOutcomeFailure,
        CallbackOutcomeSuccess,
        CallbackOutcomeTimedOut,
    )
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend
    from moto.stepfunctions.responses import StepFunctionResponse

    moto_set_stop = Environment.set_stop
    moto_wait = StateTaskServiceCallback._eval_wait_for_task_token

    def set_stop(self: Any, stop_date: Any, cause: str | None, error: str | None) -> None:
        moto_set_stop(self, stop_date=stop_date, cause=cause, error=error)
        if not self.is_frame():
            for endpoint in list(self.callback_pool_manager._pool.values()):
                if endpoint.get_outcome() is None:
                    endpoint.interrupt_all()

    def eval_wait_for_task_token(self: Any, env: Any, **kwargs: Any) -> Any:
        outcome = moto_wait(self, env=env, **kwargs)
        if isinstance(outcome, CallbackOutcomeTimedOut) and not env.is_running():
            raise TaskAbandoned()
        return outcome

    def send_task_success(self: Any, task_token: str, outcome: str) -> None:
        _notify(self._get_executions(), task_token, CallbackOutcomeSuccess(callback_id=task_token, output=outcome))

    def send_task_failure(self: Any, task_token: str, error: str | None = None, cause: str | None = None) -> Any:
        failure = CallbackOutcomeFailure(callback_id=task_token, error=error, cause=cause)
        _notify(self._get_executions(), task_token, failure)

    def send_task_failure_response(self: Any) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
        )
        return EmptyResult()

    replace(Environment, "set_stop", set_stop)
    replace(StateTaskServiceCallback, "_eval_wait_for_task_token", eval_wait_for_task_token)
    replace(StepFunctionsParserBackend, "send_task_success", send_task_success)
    replace(StepFunctionsParserBackend, "send_task_failure", send_task_failure)
    replace(StepFunctionResponse, "send_task_failure", send_task_failure_response)


def _notify(executions: list[Any], task_token: str, outcome: Any) -> None:
    from moto.stepfunctions.parser.api import InvalidToken, TaskTimedOut
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackNotifyConsumerError

    known = _pools.get(task_token)
    if known is not None:
        pools = [known]
    else:  # a token made elsewhere in moto (an activity's)
        pools = [e.exec_worker.env.callback_pool_manager for e in executions if hasattr(e.exec_worker, "env")]
    for pool in pools:
        try:
            if pool.notify(callback_id=task_token, outcome=outcome):
                return
        except CallbackNotifyConsumerError:
            # the only consumer error reported here: the task was closed (API reference, errors)
            raise TaskTimedOut(CLOSED_TASK, "TaskTimedOut", 400) from None
    raise InvalidToken()
