"""How each service says "your request breaks my model": the error code and HTTP status it returns
for a request that fails validation, per protocol and per AWS API reference (Common Errors pages
and each operation's Errors section)."""

from __future__ import annotations

# service -> (error code, HTTP status)
VALIDATION_ERRORS: dict[str, tuple[str, int]] = {
    # Batch API reference, every operation's Errors: ClientException (400) "using an action or
    # resource on behalf of a user that doesn't have permissions, or specifying an identifier that's
    # not valid" - Batch's only client-side error shape.
    "batch": ("ClientException", 400),
    # Glue API reference, StartJobRun/GetJobRun Errors: InvalidInputException (400) "The input provided was not valid."
    "glue": ("InvalidInputException", 400),
    # https://docs.aws.amazon.com/sagemaker/latest/APIReference/CommonErrors.html: ValidationException 400
    "sagemaker": ("ValidationException", 400),
    # https://docs.aws.amazon.com/step-functions/latest/apireference/CommonErrors.html: ValidationException 400
    "stepfunctions": ("ValidationException", 400),
    # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/CommonErrors.html: ValidationException 400
    "dynamodb": ("ValidationException", 400),
    # https://docs.aws.amazon.com/eventbridge/latest/APIReference/CommonErrors.html: ValidationException 400
    "events": ("ValidationException", 400),
    # SNS Publish Errors: InvalidParameter (400) "Indicates that a request parameter does not comply
    # with the associated constraints."
    "sns": ("InvalidParameter", 400),
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/CommonErrors.html:
    # InvalidParameterValue 400 "An invalid or out-of-range value was supplied for the input parameter."
    "sqs": ("InvalidParameterValue", 400),
    # S3 Error Responses: InvalidArgument (400) "Invalid Argument".
    "s3": ("InvalidArgument", 400),
}
DEFAULT_VALIDATION_ERROR = ("ValidationException", 400)

# (service, operation, top-level member) -> error that AWS documents for that member instead.
# Step Functions API reference, StartExecution Errors: InvalidName "The provided name is not
# valid", InvalidExecutionInput "The provided JSON input data is not valid"; SendTaskSuccess
# Errors: InvalidOutput "The provided JSON output data is not valid".
MEMBER_ERRORS: dict[tuple[str, str, str], tuple[str, int]] = {
    ("stepfunctions", "StartExecution", "name"): ("InvalidName", 400),
    ("stepfunctions", "StartExecution", "input"): ("InvalidExecutionInput", 400),
    ("stepfunctions", "SendTaskSuccess", "output"): ("InvalidOutput", 400),
}


def validation_error(service: str, operation: str, member: str) -> tuple[str, int]:
    top = member.split(".")[0].split("[")[0]
    return MEMBER_ERRORS.get((service, operation, top)) or VALIDATION_ERRORS.get(service, DEFAULT_VALIDATION_ERROR)
