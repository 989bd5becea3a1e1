"""Adaptations of moto's DynamoDB.

DynamoDB applies each request to an item atomically: a conditional write is checked and made as
one step, an `ADD` counter never loses an increment, and a transaction is all or nothing
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithItems.html#WorkingWithItems.ConditionalUpdate,
#WorkingWithItems.AtomicCounters). moto 5.2.5 applies them in whatever thread serves the request,
without a lock: two concurrent UpdateItems of one item can both pass their condition, an increment
can be lost, and a Query or Scan iterating a table while a write changes it raises "dictionary
changed size during iteration". jobline relies on those guarantees (one conditional UpdateItem per
state change event, the submitters' shared quota slots, slot hand-offs), so the local stack
serializes every request of the DynamoDB backend."""

from __future__ import annotations

import functools
import threading
from typing import Any

from jobline_local.adaptations.patching import replace

# Every DynamoDBBackend method a request reaches that reads or changes items.
ITEM_OPERATIONS = (
    "put_item",
    "get_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "transact_write_items",
    "transact_get_items",
    "batch_get_item",
    "batch_write_item",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
)


def adapt_dynamodb_atomic_requests() -> None:
    """One lock around each item request of moto's DynamoDB backend (re-entrant: a transaction and a
    batch call put_item/get_item within)."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ITEM_OPERATIONS:
        original = getattr(DynamoDBBackend, name)

        @functools.wraps(original)
        def serialized(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        replace(DynamoDBBackend, name, serialized)
