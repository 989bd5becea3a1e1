"""The registry of adaptations: the pinned moto, and every attribute the adaptations replace
(each adaptation has its test beside its module's tests)."""

from __future__ import annotations

import moto
import pytest

from jobline_local import adaptations
from jobline_local.adaptations.dynamodb import ITEM_OPERATIONS

# Each entry's test lives with its module's tests: tests/local/test_<module>.py.
REGISTERED = {
    "adaptations.stepfunctions_engine": {
        "adapt_asl_parse_cache",
        "adapt_json_path_cache",
        "adapt_engine_client_cache",
        "adapt_keyword_path_fields",
        "adapt_sync_without_callback",
        "adapt_engine_clock",
        "adapt_program_thread",
        "adapt_sync_poll_backoff",
    },
    "adaptations.stepfunctions_callbacks": {"adapt_callback_token_per_try", "adapt_stop_ends_callback_wait"},
    "adaptations.stepfunctions_integrations": {
        "adapt_optimized_integration_casing",
        "adapt_batch_sync_poll_retries",
        "adapt_sagemaker_processing_sync",
        "adapt_glue_sync",
        "adapt_aws_sdk_integrations",
        "adapt_unanswered_service_calls",
    },
    "adaptations.delivery": {
        "adapt_event_pattern_json_types",
        "adapt_event_pattern_lookups",
        "adapt_rule_lambda_targets",
        "adapt_s3_eventbridge_notification",
    },
    "adaptations.moto_server": {"adapt_server_dispatch_cache", "adapt_serializer_key_picks"},
    "emulated.batch": {"adapt_batch_job_start", "adapt_batch_job_description"},
    "emulated.lambda_service": {"adapt_lambda_invoke"},
    "emulated.batch_service_jobs": {"adapt_batch_service_jobs"},
    "emulated.sagemaker_processing": {"adapt_sagemaker_processing_jobs"},
    "emulated.glue": {"adapt_glue_job_runs"},
    "adaptations.dynamodb": {"adapt_dynamodb_atomic_requests", "adapt_dynamodb_expression_caches"},
    "adaptations.sqs": {"adapt_sqs_queue_walks", "adapt_sqs_atomic_queue_changes"},
}


def ours(entry: str) -> bool:
    """An adaptation of this package's own modules (another package's have their own tests)."""
    return entry.startswith(("jobline_local.adaptations.", "jobline_local.emulated."))


def test_registry_names_every_adaptation_once() -> None:
    registered: dict[str, set[str]] = {}
    for entry in adaptations.REGISTRY:
        assert callable(adaptations.resolve(entry)), entry
        module, _, function = entry.partition(":")
        if ours(entry):
            registered.setdefault(module.removeprefix("jobline_local."), set()).add(function)
    assert len(set(adaptations.REGISTRY)) == len(adaptations.REGISTRY), "an adaptation is registered twice"
    assert registered == REGISTERED, "an adaptation was added or removed: give it a test beside its module's"


def test_install_refuses_another_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adaptations, "_installed", False)
    monkeypatch.setattr(moto, "__version__", "5.2.6")
    with pytest.raises(RuntimeError, match=r"adapted to moto 5\.2\.5, found 5\.2\.6"):
        adaptations.install()


def test_pins_the_moto_it_was_written_for() -> None:
    assert moto.__version__ == adaptations.PINNED_MOTO
    replaced = {name for entry, names in adaptations.changed_by.items() if ours(entry) for name in names}
    assert all(names for entry, names in adaptations.changed_by.items() if ours(entry)), "an adaptation changed nothing"
    assert replaced == {
        "_normalise_parameters",
        "_normalise_response",
        "send_to_targets",
        "_flatten_dict",
        "matches_event",
        "_does_item_match_filters",
        "_does_item_match_named_filter",
        "_send_event_bridge_message",
        "start",
        "_get_container_property",
        "_container_details",
        "invoke",
        "parse",
        "boto_client_for",
        "list_of_moto_modules",
        "get_backend_for_host",
        "get_value",
        # the newer backends
        "visitPayload_binding_value",
        "_eval_integration_pattern",
        "_eval_sync",
        "state_task_service_for",
        "_sync_to_start_job_run",
        "_build_sync_resolver",
        "_SERVICE_ERROR_NAMES",
        "_from_error",
        "createserviceenvironment",
        "describeserviceenvironments",
        "updateserviceenvironment",
        "deleteserviceenvironment",
        "submitservicejob",
        "describeservicejob",
        "terminateservicejob",
        "listservicejobs",
        "createjobqueue",
        "submitjob",
        "describe",
        "create_processing_job",
        "response_object",
        "stop_processing_job",
        "start_job_run",
        "as_dict",
        "batch_stop_job_run",
        # the callback Tasks and the engine's clock
        "_eval_body",
        "_evaluate_with_timeout",
        "_eval_wait_for_task_token",
        "set_stop",
        "send_task_success",
        "send_task_failure",
        # an execution's program in its worker's thread (tests/local/test_stepfunctions_engine.py)
        "eval",
        # DynamoDB's item requests, one at a time (tests/local/test_dynamodb_atomic.py)
        *ITEM_OPERATIONS,
        # DynamoDB's expressions parsed once per text (tests/local/test_dynamodb_expressions.py; and "parse")
        "make",
        "nodes_to_be_processed",
        "process",
        "traverse",
        # SQS queues' attributes when read and counts in one walk (tests/local/test_sqs.py)
        "attributes",
        "messages",
        "approximate_number_of_messages_delayed",
        "approximate_number_of_messages_not_visible",
        # SQS queues' messages changed under the queue's lock (tests/local/test_sqs.py)
        "delete_message",
        "receive_message",
        "purge_queue",
    }, "an adaptation was added or removed: give it a test here"
