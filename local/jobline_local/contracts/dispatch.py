"""Where the contracts meet moto: every request moto dispatches (in-process through its botocore
stub, or through its HTTP server, including the calls moto's Step Functions engine makes with
boto3 clients) is parsed with moto's own wire-request parser against the botocore model and
handed to the contracts before moto's handler runs. A refusal is serialized as that service's
protocol serializes an error."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable
from typing import Any

from jobline_local.contracts.core import Call, Refusal, record

Handler = Callable[[Call], list[Callable[[], None]]]


def _parse(service: str, request: Any, action: str | None) -> tuple[str, dict[str, Any]] | None:
    """(operation, params) of a request; None when it is no AWS service's (moto's own API), or
    when it cannot be mapped to an operation of the model (recorded as unvalidated, and moto
    answers it as it would)."""
    from botocore.exceptions import UnknownServiceError
    from botocore.model import OperationNotFoundError
    from moto.core.parse import PROTOCOL_PARSERS, RequestParserError
    from moto.core.request import determine_request_protocol
    from moto.core.routing import NotFound, get_service_router
    from moto.core.utils import get_service_model

    try:
        model = get_service_model(service)
    except (UnknownServiceError, KeyError, ValueError):
        return None
    protocol = determine_request_protocol(model, request.content_type)
    uri_params: dict[str, Any] = {}
    try:
        if protocol.startswith("rest"):
            operation, uri_params = get_service_router(service).match(request)
        else:
            operation = model.operation_model(action or "")
        parser = PROTOCOL_PARSERS[protocol](operation, map_type=dict)
        params = parser.parse(
            {
                "method": request.method,
                "values": request.values,
                "headers": request.headers,
                "body": request.data,
                "url_path": request.path,
                "url_params": uri_params,
            }
        )
    except (
        OperationNotFoundError,
        NotImplementedError,
        LookupError,
        NotFound,
        RequestParserError,
        ValueError,
    ) as error:
        with record.lock:
            record.unvalidated.add((service, action or f"{request.method} {request.path}", type(error).__name__))
        return None
    return operation.name, dict(params)


def install(handle: Handler) -> None:
    """Route every moto request through `handle` (once). `handle` raises a Refusal, or returns
    what to do once moto has accepted the request (a stateful contract remembers it then)."""
    from moto.core.exceptions import ServiceException
    from moto.core.responses import ActionResult, BaseResponse
    from moto.s3.responses import S3Response

    class ContractError(ServiceException):
        """Serialized by moto with the service's own protocol (its module is not moto's, so moto
        looks the code up in the service's model only)."""

    if getattr(BaseResponse.call_action, "jobline_contracts", False):
        return

    def run(call: Call, refuse: Callable[[Refusal], Any], proceed: Callable[[], Any]) -> Any:
        try:
            accepted = handle(call)
        except Refusal as refusal:
            return refuse(refusal)
        response = proceed()
        if int(response[0]) < 300:
            for commit in accepted:
                commit()
        return response

    original_call_action = BaseResponse.call_action

    def call_action(self: Any) -> Any:
        parsed = _parse(self.boto3_service_name, self.normalized_request, self._get_action())
        if parsed is None:
            return original_call_action(self)

        def refuse(refusal: Refusal) -> Any:
            with warnings.catch_warnings():  # moto warns of codes its model lacks (Batch's 429)
                warnings.simplefilter("ignore")
                _, headers, body = self.serialized(ActionResult(ContractError(refusal.code, refusal.message)))
            headers["status"] = str(refusal.status)
            headers, body = self._enrich_response(headers, body)  # its x-amzn-requestid, as moto's own errors
            return refusal.status, headers, body

        call = Call(self.boto3_service_name, parsed[0], parsed[1], self.current_account, self.region)
        return run(call, refuse, lambda: original_call_action(self))

    call_action.jobline_contracts = True  # type: ignore[attr-defined]
    BaseResponse.call_action = call_action

    def s3_entry(original: Callable[..., Any]) -> Callable[..., Any]:
        def entry(self: Any, request: Any, full_url: str, headers: Any) -> Any:
            parsed = _parse("s3", request, None)
            if parsed is None:
                return original(self, request, full_url, headers)

            def refuse(refusal: Refusal) -> Any:
                body = f"<Error><Code>{refusal.code}</Code><Message>{_xml(refusal.message)}</Message></Error>"
                return refusal.status, {"Content-Type": "application/xml", "x-amz-request-id": str(uuid.uuid4())}, body

            call = Call("s3", parsed[0], parsed[1], _account(request), self.get_region_from_url(request, full_url))
            return run(call, refuse, lambda: original(self, request, full_url, headers))

        return entry

    S3Response.bucket_response = s3_entry(S3Response.bucket_response)
    S3Response.key_response = s3_entry(S3Response.key_response)


def _account(request: Any) -> str:
    from moto.core import DEFAULT_ACCOUNT_ID

    return request.headers.get("x-moto-account-id", DEFAULT_ACCOUNT_ID)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
