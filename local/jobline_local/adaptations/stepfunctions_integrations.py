"""Adaptations of the service integrations of moto's Step Functions engine: the optimized Batch
integration, AWS SDK integrations, SageMaker's (which moto lacks) and Glue's `.sync`, with the
parameter casing, outputs and errors AWS gives them."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import botocore.session
from botocore.model import OperationModel

from jobline_local.adaptations.patching import replace


def epoch_ms(value: Any) -> Any:
    """Timestamps as Step Functions renders them in a task's output: epoch milliseconds."""
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp() * 1000)
    if isinstance(value, dict):
        return {k: epoch_ms(v) for k, v in value.items()}
    if isinstance(value, list):
        return [epoch_ms(v) for v in value]
    return value


@lru_cache(maxsize=64)
def _operation(service: str, action: str) -> OperationModel:
    """botocore's model of `action`, given in camelCase (ASL) or snake_case (moto's own calls)."""
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model(service)
    wanted = xform_name(action)
    for name in model.operation_names:
        if xform_name(name) == wanted:
            return model.operation_model(name)
    raise KeyError(f"{service} has no operation {action}")


def _task_operation(task: Any, boto_service_name: str | None, service_action_name: str | None) -> OperationModel:
    return _operation(task._get_boto_service_name(boto_service_name), service_action_name or task.resource.api_action)


def _to_boto_request(
    self: Any, parameters: dict, boto_service_name: str | None = None, service_action_name: str | None = None
) -> None:
    """A task's PascalCase parameters -> the service's own member names, by botocore's shapes."""
    self._to_boto_request(parameters, _task_operation(self, boto_service_name, service_action_name).input_shape)


def _from_boto_response(
    self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None
) -> None:
    """The service's answer -> the task's PascalCase output, by botocore's shapes."""
    operation = _task_operation(self, boto_service_name, service_action_name)
    if operation.output_shape is not None:
        self._from_boto_response(response, operation.output_shape)


def adapt_optimized_integration_casing() -> None:
    """Optimized integrations (batch:submitJob.sync, ...) take PascalCase parameters and return
    PascalCase output. AWS translates both ways; moto 5.2.5's port leaves `_normalise_parameters`
    and `_normalise_response` empty, so boto3 is called with `JobName=` and fails, and the
    output keeps boto3's camelCase. Translate with botocore's shapes, as AWS does."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch import (
        StateTaskServiceBatch,
    )

    replace(StateTaskServiceBatch, "_normalise_parameters", _to_boto_request)
    replace(StateTaskServiceBatch, "_normalise_response", _from_boto_response)


def _task_failed(env: Any, task: Any, cause: dict[str, Any]) -> Exception:
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    return FailureEventException(
        FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(
                taskFailedEventDetails=TaskFailedEventDetails(
                    resource=task._get_sfn_resource(),
                    resourceType=task._get_sfn_resource_type(),
                    error=StatesErrorNameType.StatesTaskFailed.to_name(),
                    cause=json.dumps(cause, separators=(",", ":")),
                )
            ),
        )
    )


def _named_failure(env: Any, task: Any, name: str, cause: str) -> Any:
    """The task failed with error `name` (a retrier or catcher matches it by that name)."""
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    return FailureEvent(
        env=env,
        error_name=CustomErrorName(name),
        event_type=HistoryEventType.TaskFailed,
        event_details=EventDetails(
            taskFailedEventDetails=TaskFailedEventDetails(
                error=name,
                cause=cause,
                resource=task._get_sfn_resource(),
                resourceType=task._get_sfn_resource_type(),
            )
        ),
    )


def _service_error(env: Any, task: Any, error: Exception, prefix: str) -> Any:
    """An optimized integration's error from a service: `<Service>.<Code>`, as AWS names it."""
    from botocore.exceptions import ClientError

    assert isinstance(error, ClientError)
    name = f"{prefix}.{error.response['Error']['Code']}"
    return _named_failure(env, task, name, error.response["Error"].get("Message", ""))


PROCESSING_RUNNING = ("InProgress", "Stopping")


def _sagemaker_task_class() -> type:
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for
    from moto.stepfunctions.parser.utils import camel_to_snake_case

    class StateTaskServiceSageMaker(StateTaskServiceCallback):
        """SageMaker's optimized integration: request-response for its actions, and `.sync` for
        createProcessingJob, polling DescribeProcessingJob as AWS does."""

        def __init__(self) -> None:
            super().__init__(supported_integration_patterns={ResourceCondition.Sync})

        def _validate_service_integration_is_supported(self) -> None:
            pass  # SageMaker's actions take PascalCase parameters as they are

        def _client(self, resource_runtime_part: Any, state_credentials: Any) -> Any:
            return boto_client_for(
                service="sagemaker", region=resource_runtime_part.region, state_credentials=state_credentials
            )

        def _from_error(self, env: Any, ex: Exception) -> Any:
            if isinstance(ex, ClientError):
                return _service_error(env, self, ex, "SageMaker")
            return super()._from_error(env=env, ex=ex)

        def _eval_service_task(
            self, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
        ) -> None:
            client = self._client(resource_runtime_part, state_credentials)
            response = getattr(client, camel_to_snake_case(self.resource.api_action))(**normalised_parameters)
            response.pop("ResponseMetadata", None)
            env.stack.append(epoch_ms(response))

        def _build_sync_resolver(
            self, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
        ) -> Callable[[], Any]:
            if self.resource.api_action.lower() != "createprocessingjob":
                return super()._build_sync_resolver(
                    env, resource_runtime_part, normalised_parameters, state_credentials
                )
            env.stack.pop()  # CreateProcessingJob's answer; the job is known by its name
            client = self._client(resource_runtime_part, state_credentials)
            name = normalised_parameters["ProcessingJobName"]

            def resolve() -> Any:
                job = client.describe_processing_job(ProcessingJobName=name)
                job.pop("ResponseMetadata", None)
                job = epoch_ms(job)
                if job["ProcessingJobStatus"] in PROCESSING_RUNNING:
                    return None
                if job["ProcessingJobStatus"] == "Completed":
                    return job
                raise _task_failed(env, self, job)

            def abandon() -> None:
                if client.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] == "InProgress":
                    client.stop_processing_job(ProcessingJobName=name)

            resolve.abandon = abandon  # type: ignore[attr-defined]
            return resolve

    return StateTaskServiceSageMaker


def adapt_sagemaker_processing_sync() -> None:
    """moto 5.2.5 has no SageMaker integration ("Unsupported sync callback procedure" for
    sagemaker:createProcessingJob.sync). Add it: CreateProcessingJob, then DescribeProcessingJob
    until the job ends; Completed is the task's output (PascalCase, timestamps in epoch ms),
    Failed or Stopped is States.TaskFailed with the description as Cause; a stopped execution
    stops the job."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory

    original = state_task_factory.state_task_service_for
    sagemaker_task = _sagemaker_task_class()

    def state_task_service_for(service_name: str) -> Any:
        return sagemaker_task() if service_name == "sagemaker" else original(service_name)

    replace(state_task_factory, "state_task_service_for", state_task_service_for)


GLUE_FAILED = ("FAILED", "TIMEOUT", "ERROR", "STOPPED", "EXPIRED")
GLUE_ENDED = ("SUCCEEDED", *GLUE_FAILED)


def adapt_glue_sync() -> None:
    """moto 5.2.5's glue:startJobRun.sync treats a STOPPED run as a success and puts timestamps in
    the Cause as ISO text. Poll GetJobRun as AWS does: SUCCEEDED is the output, any other end
    (FAILED, TIMEOUT, ERROR, STOPPED) is States.TaskFailed with the JobRun (JobRunState, epoch ms)
    as Cause; a stopped execution stops the run (BatchStopJobRun)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_glue import (
        StateTaskServiceGlue,
    )

    def sync_to_start_job_run(
        self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
    ) -> Callable[[], Any]:
        started = env.stack.pop()
        job_name, run_id = started["JobName"], started["JobRunId"]
        glue = self._get_glue_client(resource_runtime_part=resource_runtime_part, state_credentials=state_credentials)

        def resolve() -> Any:
            run = epoch_ms(glue.get_job_run(JobName=job_name, RunId=run_id)["JobRun"])
            run["JobName"] = job_name
            if run["JobRunState"] not in GLUE_ENDED:
                return None
            if run["JobRunState"] == "SUCCEEDED":
                return run
            raise _task_failed(env, self, run)

        def abandon() -> None:
            glue.batch_stop_job_run(JobName=job_name, JobRunIds=[run_id])

        resolve.abandon = abandon  # type: ignore[attr-defined]
        return resolve

    replace(StateTaskServiceGlue, "_sync_to_start_job_run", sync_to_start_job_run)


def adapt_aws_sdk_integrations() -> None:
    """AWS SDK integrations (aws-sdk:batch:submitServiceJob, ...) take PascalCase parameters and
    return PascalCase output whatever the service's own casing; moto 5.2.5 passes the names
    through (boto3 then rejects `JobName=` for Batch) and returns camelCase. Translate with
    botocore's shapes, as AWS does. Errors are named `<Service>.<Exception>` in PascalCase: moto
    knows DynamoDb and Sfn only, so Batch errors came out as `batch.ClientException`."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_aws_sdk
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    replace(StateTaskServiceAwsSdk, "_normalise_parameters", _to_boto_request)
    replace(StateTaskServiceAwsSdk, "_normalise_response", _from_boto_response)
    names = dict(state_task_service_aws_sdk._SERVICE_ERROR_NAMES)
    names.update({"batch": "Batch", "sagemaker": "SageMaker", "glue": "Glue", "s3": "S3", "sqs": "Sqs"})
    replace(state_task_service_aws_sdk, "_SERVICE_ERROR_NAMES", names)


# The AWS SDK's exception for a call that got no answer, as Step Functions names it in a task's
# error: `<Service>.SdkClientException` ("Handle Lambda service exceptions",
# https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html, retries
# Lambda.SdkClientException; an AWS SDK integration's errors are `<Service>.<Exception>`,
# https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html).
SDK_CLIENT_EXCEPTION = "SdkClientException"


def adapt_unanswered_service_calls() -> None:
    """A callback Task's own service call that got no answer (a read timeout, a dropped
    connection: the call may have run) fails the task with `SQS.SdkClientException` for
    sqs:sendMessage and `<Service>.SdkClientException` (DynamoDb., Batch., ...) for an AWS SDK
    integration, as AWS names the SDK's client exception. moto 5.2.5 names any exception other
    than a ClientError `States.Runtime`, which no retrier of the service's errors matches, so a
    lost response ended the execution."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sqs import (
        StateTaskServiceSqs,
    )

    def naming(task_class: type, service_name: Callable[[Any], str]) -> None:
        moto_from_error = task_class._from_error  # type: ignore[attr-defined]

        def from_error(self: Any, env: Any, ex: Exception) -> Any:
            if _unanswered(ex):
                return _named_failure(env, self, f"{service_name(self)}.{SDK_CLIENT_EXCEPTION}", str(ex))
            return moto_from_error(self, env, ex)

        replace(task_class, "_from_error", from_error)

    naming(StateTaskServiceSqs, lambda task: "SQS")
    naming(StateTaskServiceAwsSdk, lambda task: task._normalise_service_error_name(task.resource.api_name))


# Throttling codes of the services whose `.sync` jobs the engine polls (each API reference's
# Common Errors); any 5xx is transient too.
POLL_THROTTLES = frozenset({"TooManyRequestsException", "ThrottlingException", "Throttling"})


def _unanswered(error: Exception) -> bool:
    """A call that got no answer: a timeout or a dropped connection (the call may have run)."""
    from botocore.exceptions import ConnectionError, HTTPClientError

    return isinstance(error, HTTPClientError | ConnectionError)


def _transient(error: Exception) -> bool:
    from botocore.exceptions import ClientError

    if _unanswered(error):
        return True
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or error.response["Error"]["Code"] in POLL_THROTTLES
    return False


def polling_through_transient_errors(resolve: Callable[[], Any]) -> Callable[[], Any]:
    """A `.sync` resolver whose poll, on a throttle, a 5xx or a lost response, polls again at the
    next tick instead of failing the task; any other error still fails it."""
    import logging

    def poll() -> Any:
        try:
            return resolve()
        except Exception as error:
            if not _transient(error):
                raise
            logging.getLogger(__name__).warning("a .sync poll failed, polling again: %r", error)
            return None

    if hasattr(resolve, "abandon"):
        poll.abandon = resolve.abandon  # type: ignore[attr-defined]
    return poll


def adapt_batch_sync_poll_retries() -> None:
    """For batch:submitJob.sync, AWS Step Functions submits the job, then watches it itself
    ("Run a Job (.sync)": the task waits for the job to complete); a throttle or a 5xx of that
    internal watch is the service's own business and is not the task's error (only the job's
    end, or the task's timeout, ends the task). moto 5.2.5 polls DescribeJobs in the task and lets
    any poll error fail the task, so the state's Retry resubmits: a second Batch job for one
    attempt. Poll through transient errors; TimeoutSeconds still bounds the wait."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch import (
        StateTaskServiceBatch,
    )

    moto_build = StateTaskServiceBatch._build_sync_resolver

    def build_sync_resolver(self: Any, *args: Any, **kwargs: Any) -> Callable[[], Any]:
        return polling_through_transient_errors(moto_build(self, *args, **kwargs))

    replace(StateTaskServiceBatch, "_build_sync_resolver", build_sync_resolver)
