"""The local DynamoDB parses each expression text once (jobline_local.adaptations.dynamodb,
adapt_dynamodb_expression_caches): a speed change only, so every answer is moto's own. Each request
below is made twice (the second is served from the kept parse) and must answer as the first did."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from jobline_local.adaptations import changed_by, install, originals

ENTRY = "jobline_local.adaptations.dynamodb:adapt_dynamodb_expression_caches"


@pytest.fixture
def table(dynamodb_table: Any) -> Any:
    return dynamodb_table


def answer(client: Any, **request: Any) -> dict[str, Any]:
    """The item after the request, or the error's code and message."""
    try:
        client.update_item(TableName="t", Key={"pk": {"S": "a"}}, **request)
    except ClientError as error:
        return {"error": error.response["Error"]["Code"], "message": error.response["Error"]["Message"]}
    return client.get_item(TableName="t", Key={"pk": {"S": "a"}}, ConsistentRead=True)["Item"]


def test_replaces_the_parsers_and_the_validator_passes() -> None:
    install()
    assert sorted(changed_by[ENTRY]) == ["make", "nodes_to_be_processed", "parse", "process", "traverse"]


def counted(step: int, status: str) -> dict[str, Any]:
    """An update of one shape (the kept parse's) with its own values: add `step`, set `status`."""
    return {
        "UpdateExpression": "SET #n = if_not_exists(#n, :zero) + :step, #s = :s ADD #c :one",
        "ConditionExpression": "attribute_not_exists(#s) OR #s <> :s",
        "ExpressionAttributeNames": {"#n": "n", "#s": "status", "#c": "calls"},
        "ExpressionAttributeValues": {":zero": {"N": "0"}, ":step": {"N": str(step)}, ":s": {"S": status}}
        | {":one": {"N": "1"}},
    }


def test_a_kept_parse_applies_each_request_with_its_own_values(table: Any) -> None:
    for step, status in ((1, "RUNNING"), (5, "SUCCEEDED")):
        item = answer(table, **counted(step, status))
    assert item == {"pk": {"S": "a"}, "n": {"N": "6"}, "status": {"S": "SUCCEEDED"}, "calls": {"N": "2"}}
    refused = answer(table, **counted(1, "SUCCEEDED"))
    assert refused["error"] == "ConditionalCheckFailedException"


@pytest.mark.parametrize(
    "request_",
    [
        # does not parse
        {"UpdateExpression": "SET a = = :a", "ExpressionAttributeValues": {":a": {"S": "x"}}},
        # two SET clauses
        {"UpdateExpression": "SET a = :a SET b = :a", "ExpressionAttributeValues": {":a": {"S": "x"}}},
        # a name the expressions do not use (found from the kept condition parse's placeholders)
        {
            "UpdateExpression": "SET a = :a",
            "ConditionExpression": "attribute_not_exists(#b)",
            "ExpressionAttributeNames": {"#b": "b", "#unused": "c"},
            "ExpressionAttributeValues": {":a": {"S": "x"}},
        },
        # a value given but used by neither expression
        {
            "UpdateExpression": "SET a = :a",
            "ConditionExpression": "attribute_not_exists(b)",
            "ExpressionAttributeValues": {":a": {"S": "x"}, ":unused": {"S": "y"}},
        },
    ],
)
def test_a_refused_expression_is_refused_every_time_as_moto_refuses_it(table: Any, request_: dict[str, Any]) -> None:
    first, second = answer(table, **request_), answer(table, **request_)
    assert "error" in first
    assert second == first


def test_the_clause_count_check_on_the_whole_expression_is_moto_s_check() -> None:
    """moto's own validator pass, on every level, refuses exactly what the adapted one refuses."""
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    from moto.dynamodb.parsing.validators import ActionCountValidator

    install()
    moto_traverse = originals[(ActionCountValidator, "traverse")]
    for text in ("SET a = :a, b = :b ADD c :c REMOVE d", "SET a = :a REMOVE b SET c = :c", "ADD a :a ADD b :b"):
        outcomes = []
        for traverse in (moto_traverse, ActionCountValidator.traverse):
            try:
                traverse(ActionCountValidator(), UpdateExpressionParser.make(text))
                outcomes.append("ok")
            except Exception as error:  # the refusal itself is compared
                outcomes.append(type(error).__name__)
        assert outcomes[0] == outcomes[1], text
