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
import json
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


# Parsed expressions kept: a run's writes repeat a few expression shapes thousands of times.
PARSED_EXPRESSIONS = 512


def adapt_dynamodb_expression_caches() -> None:
    """moto parses a request's UpdateExpression and ConditionExpression twice (once to check the
    placeholders it uses, once to apply it) and checks the ADD/REMOVE/SET clause counts at every
    nesting level of the update: a third of an UpdateItem's time locally. A parse is a pure function
    of its text (and of the names and values for a condition), and its tree is read, never changed,
    by its users (the update validator works on a deep copy): the parse is kept per text, and the
    clause counts are checked once, on the whole expression (each nested level's clauses are a
    subset of the whole's, so the whole's check is the same check). The update validator's nine
    passes look up their node types once per pass, not once per node. Answers and errors are
    unchanged; an expression that does not parse is parsed (and refused) every time."""
    from moto.dynamodb import comparisons
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, UpdateExpression
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    from moto.dynamodb.parsing.validators import ActionCountValidator

    parse_update = functools.lru_cache(maxsize=PARSED_EXPRESSIONS)(UpdateExpressionParser.make.__func__)
    replace(UpdateExpressionParser, "make", classmethod(lambda cls, expression: parse_update(cls, expression)))

    original_parse = comparisons.ConditionExpressionParser.parse
    parsed: dict[str, tuple[Any, list[str], list[str]]] = {}
    parsed_lock = threading.Lock()

    def parse(self: Any) -> Any:
        key = json.dumps(
            [self.condition_expression, self.expression_attribute_names, self.expression_attribute_values],
            sort_keys=True,
            default=str,
        )
        with parsed_lock:
            hit = parsed.get(key)
        if hit is None:
            op = original_parse(self)
            with parsed_lock:
                if len(parsed) >= PARSED_EXPRESSIONS:
                    parsed.pop(next(iter(parsed)))
                parsed[key] = (op, list(self.expr_attr_names_found), list(self.expr_attr_values_found))
            return op
        op, names, values = hit
        self.expr_attr_names_found.extend(names)
        self.expr_attr_values_found.extend(values)
        return op

    replace(comparisons.ConditionExpressionParser, "parse", parse)

    def processing_map(self: Any) -> dict[type, Any]:
        if "_jobline_map" not in self.__dict__:
            self._jobline_map = self._processing_map()
            self._jobline_types = tuple(self._jobline_map)
        return self._jobline_map

    def nodes_to_be_processed(self: Any) -> tuple[type, ...]:
        processing_map(self)
        return self._jobline_types

    def process(self: Any, node: Any) -> Any:
        for class_key, processor in processing_map(self).items():
            if isinstance(node, class_key):
                return processor(node)
        return None

    replace(DepthFirstTraverser, "nodes_to_be_processed", nodes_to_be_processed)
    replace(DepthFirstTraverser, "process", process)
    original_traverse = ActionCountValidator.traverse

    def traverse(self: Any, node: Any) -> Any:
        if isinstance(node, UpdateExpression):
            return self.verify_action_counts(node)
        return original_traverse(self, node)

    replace(ActionCountValidator, "traverse", traverse)
