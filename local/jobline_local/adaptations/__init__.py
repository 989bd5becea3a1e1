"""Every change jobline makes to moto's behaviour, registered and installed here.

jobline runs locally on moto (pinned in requirements-dev.lock). Where the pinned moto falls short
of AWS, an adaptation closes the gap, and tests/local/ holds one test per adaptation that fails if
moto stops behaving as the adaptation assumes. They live with what they adapt:

- adaptations.stepfunctions_engine: the ASL engine itself (parsing, `.sync` waiting, clients,
  threads);
- adaptations.stepfunctions_callbacks: its callback Tasks (a token per try, stop ends the wait);
- adaptations.stepfunctions_integrations: its service integrations (Batch, aws-sdk, SageMaker, Glue);
- adaptations.delivery: event delivery (rule matching, rules to Lambda targets, S3 to EventBridge);
- adaptations.moto_server: the server's request dispatch, and its responses' members found once per
  shape (speed only);
- adaptations.dynamodb: DynamoDB's item requests made atomic (one at a time, as AWS applies each),
  and its expressions parsed once per text (speed only);
- adaptations.sqs: a queue's messages changed one request at a time (a delete lost concurrent sends);
  its attributes computed when read, its counts one walk each (speed only);
- emulated.<service>: a service whose work the local stack does, next to its local compute
  (Batch jobs, Batch service jobs, SageMaker processing, Glue job runs, Lambda Invoke).

`install()` applies every entry of REGISTRY once, in order, in the process that runs moto: the
local stack's (jobline_local.stack, moto in server mode) or a test's (mock_aws). To add one, write
a function that makes its changes through `patching.replace` / `patching.add`, add its
"module:function" to REGISTRY (one line), and give it a test (tests/local/test_adaptations.py
lists this package's own; another package's entries are tested by that package's tests).
Adapted code hands work to the local stack through `hooks`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from jobline_local.adaptations.hooks import clear_hooks, hooks, set_hooks
from jobline_local.adaptations.patching import originals

__all__ = [
    "PINNED_MOTO",
    "REGISTRY",
    "changed_by",
    "clear_hooks",
    "hooks",
    "install",
    "originals",
    "resolve",
    "set_hooks",
]

PINNED_MOTO = "5.2.5"

# "module:function", installed in this order. Dotted paths rather than imports: the adaptations'
# modules import `hooks` and `patching` from this package, and the order matters (the engine's
# client cache must be in place before the SageMaker integration takes its client factory).
REGISTRY = (
    "jobline_local.adaptations.stepfunctions_integrations:adapt_optimized_integration_casing",
    "jobline_local.adaptations.stepfunctions_integrations:adapt_batch_sync_poll_retries",
    "jobline_local.adaptations.delivery:adapt_event_pattern_json_types",
    "jobline_local.adaptations.delivery:adapt_event_pattern_lookups",
    "jobline_local.adaptations.delivery:adapt_rule_lambda_targets",
    "jobline_local.adaptations.delivery:adapt_s3_eventbridge_notification",
    "jobline_local.emulated.batch:adapt_batch_job_start",
    "jobline_local.emulated.batch:adapt_batch_job_description",
    "jobline_local.emulated.lambda_service:adapt_lambda_invoke",
    "jobline_local.adaptations.stepfunctions_engine:adapt_asl_parse_cache",
    "jobline_local.adaptations.stepfunctions_engine:adapt_json_path_cache",
    "jobline_local.adaptations.stepfunctions_engine:adapt_engine_client_cache",
    "jobline_local.adaptations.moto_server:adapt_server_dispatch_cache",
    "jobline_local.adaptations.moto_server:adapt_serializer_key_picks",
    "jobline_local.adaptations.stepfunctions_engine:adapt_keyword_path_fields",
    "jobline_local.adaptations.stepfunctions_engine:adapt_sync_poll_backoff",
    "jobline_local.adaptations.stepfunctions_engine:adapt_sync_without_callback",
    "jobline_local.adaptations.stepfunctions_engine:adapt_engine_clock",
    "jobline_local.adaptations.stepfunctions_engine:adapt_program_thread",
    "jobline_local.adaptations.stepfunctions_callbacks:adapt_callback_token_per_try",
    "jobline_local.adaptations.stepfunctions_callbacks:adapt_stop_ends_callback_wait",
    "jobline_local.adaptations.stepfunctions_integrations:adapt_sagemaker_processing_sync",
    "jobline_local.adaptations.stepfunctions_integrations:adapt_glue_sync",
    "jobline_local.adaptations.stepfunctions_integrations:adapt_aws_sdk_integrations",
    "jobline_local.adaptations.stepfunctions_integrations:adapt_unanswered_service_calls",
    "jobline_local.emulated.batch_service_jobs:adapt_batch_service_jobs",
    "jobline_local.emulated.sagemaker_processing:adapt_sagemaker_processing_jobs",
    "jobline_local.emulated.glue:adapt_glue_job_runs",
    "jobline_local.adaptations.dynamodb:adapt_dynamodb_atomic_requests",
    "jobline_local.adaptations.dynamodb:adapt_dynamodb_expression_caches",
    "jobline_local.adaptations.sqs:adapt_sqs_queue_walks",
    "jobline_local.adaptations.sqs:adapt_sqs_atomic_queue_changes",
)
_installed = False
# entry -> the attributes it replaced or added (for the tests: each adaptation's own changes).
changed_by: dict[str, list[str]] = {}


def resolve(entry: str) -> Callable[[], None]:
    module, _, function = entry.partition(":")
    return getattr(importlib.import_module(module), function)


def install() -> None:
    """Apply every adaptation once. Refuses a moto other than the pinned one: each adaptation
    was written against its internals."""
    global _installed
    if _installed:
        return
    import moto

    if moto.__version__ != PINNED_MOTO:
        raise RuntimeError(f"jobline's local stack is adapted to moto {PINNED_MOTO}, found {moto.__version__}")
    for entry in REGISTRY:
        before = set(originals)
        resolve(entry)()
        changed_by[entry] = sorted(name for _, name in originals.keys() - before)
    _installed = True
