"""The local DynamoDB applies each item request atomically, as AWS does
(jobline_local.adaptations.dynamodb): concurrent conditional counters never lose an increment and
never pass a condition together."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models import DynamoDBBackend

from jobline_local.adaptations import changed_by, install
from jobline_local.adaptations.dynamodb import ITEM_OPERATIONS

ENTRY = "jobline_local.adaptations.dynamodb:adapt_dynamodb_atomic_requests"
THREADS, CALLS, LIMIT = 8, 40, 100


@pytest.fixture
def table(dynamodb_table: Any) -> Any:
    return dynamodb_table


def test_every_item_request_of_the_backend_is_serialized() -> None:
    install()
    assert sorted(changed_by[ENTRY]) == sorted(ITEM_OPERATIONS)
    assert all(hasattr(DynamoDBBackend, name) for name in ITEM_OPERATIONS)


def take(client: Any) -> bool:
    """A capped counter, as the submitters' quota item: one more call while fewer than LIMIT."""
    try:
        client.update_item(
            TableName="t",
            Key={"pk": {"S": "QUOTA#x"}},
            UpdateExpression="ADD calls :one",
            ConditionExpression="attribute_not_exists(calls) OR calls < :limit",
            ExpressionAttributeValues={":one": {"N": "1"}, ":limit": {"N": str(LIMIT)}},
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return False
    return True


def test_concurrent_capped_counters_count_every_call_and_never_pass_the_cap(table: Any) -> None:
    with ThreadPoolExecutor(THREADS) as pool:
        taken = list(pool.map(lambda _: take(table), range(THREADS * CALLS)))
    calls = int(table.get_item(TableName="t", Key={"pk": {"S": "QUOTA#x"}})["Item"]["calls"]["N"])
    assert sum(taken) == calls == LIMIT
