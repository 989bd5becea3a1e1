"""Lambda event source mappings, locally: SQS queues and DynamoDB streams polled and delivered to
the local Lambda service in batches shaped as Lambda's, with its failure handling."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from jobline_local.deploy.deployment import EventSourceMapping, FunctionSpec
from jobline_local.emulated.lambda_service import LambdaService
from jobline_local.emulated.lambda_workers import InvokeResult

# Lambda's SQS pollers long-poll ("Lambda polls the queue", Lambda developer guide, "Using Lambda
# with Amazon SQS", https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html) with SQS's longest
# wait, 20 s: a message wakes the waiting receive at once, and an idle queue costs 3 receives a minute.
LONG_POLL_SECONDS = 20


class Filters:
    """A mapping's FilterCriteria: EventBridge's pattern language (moto's), the patterns ORed; no
    pattern lets every record through (Lambda developer guide, "Control which events Lambda sends
    to your function", https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html)."""

    def __init__(self, patterns: list[str]) -> None:
        from moto.events.models import EventPattern

        self.patterns = [EventPattern.load(pattern) for pattern in patterns]

    def match(self, record: dict[str, Any]) -> bool:
        return not self.patterns or any(p.matches_event(record) for p in self.patterns)


def sqs_filter_view(record: dict[str, Any]) -> dict[str, Any]:
    """An SQS record as its filters see it: a JSON body as its value, any other body as its text
    (Lambda developer guide, "Using event filtering with an Amazon SQS event source": filters
    apply to the `body` key)."""
    try:
        return {**record, "body": json.loads(record["body"])}
    except ValueError:
        return record


class SqsPoller:
    """An SQS event source mapping: long-polls the queue, invokes the function with batches of
    records shaped as Lambda's, deletes what succeeded. With ReportBatchItemFailures only the
    listed messages stay; a function error keeps the whole batch. Messages that stay become
    visible again after the queue's visibility timeout (divided by the clock speed), and the
    queue's redrive policy moves them to its dead-letter queue after maxReceiveCount receives.
    Messages the mapping's FilterCriteria reject are deleted without an invocation, as Lambda
    deletes them; ScalingConfig.MaximumConcurrency caps the concurrent invocations (one poller
    thread per allowed invocation)."""

    def __init__(self, mapping: EventSourceMapping, lambdas: LambdaService, clients: Any, clock_speed: float) -> None:
        self.mapping = mapping
        self.lambdas = lambdas
        self.filters = Filters(mapping.filters)
        self.sqs = clients.client("sqs")
        self.clock_speed = clock_speed
        self.region = lambdas.deployment.region
        self.url = self.sqs.get_queue_url(QueueName=mapping.source_arn.split(":")[-1])["QueueUrl"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["VisibilityTimeout"])
        self.visibility_timeout = int(attributes["Attributes"].get("VisibilityTimeout", 30))
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.in_flight = 0

    def start(self) -> None:
        spec = self.lambdas.deployment.functions[self.mapping.function_name]
        pollers = self.mapping.maximum_concurrency or self.lambdas.pools[spec.name].concurrency
        for i in range(max(1, int(pollers))):
            thread = threading.Thread(target=self._loop, name=f"sqs-poller-{spec.logical_id}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()

    def _loop(self) -> None:
        spec = self.lambdas.deployment.functions[self.mapping.function_name]
        while not self._stopping.is_set():
            try:
                messages = self.sqs.receive_message(
                    QueueUrl=self.url,
                    MaxNumberOfMessages=min(self.mapping.batch_size, 10),
                    WaitTimeSeconds=LONG_POLL_SECONDS,
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception as error:
                if self._stopping.is_set():
                    return
                self.lambdas.activity.note("sqs", f"receive failed: {error!r}", logging.WARNING)
                time.sleep(1)
                continue
            if messages:
                self.in_flight += 1
                try:
                    self._process(spec, messages)
                finally:
                    self.in_flight -= 1

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        attributes = {}
        for name, value in message.get("MessageAttributes", {}).items():
            attribute: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
            if "StringValue" in value:
                attribute["stringValue"] = value["StringValue"]
            if "BinaryValue" in value:
                attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
            attributes[name] = attribute
        record = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": attributes,
            "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324
            "eventSource": "aws:sqs",
            "eventSourceARN": self.mapping.source_arn,
            "awsRegion": self.region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        return record

    def _process(self, spec: FunctionSpec, messages: list[dict[str, Any]]) -> None:
        records = [self._record(m) for m in messages]
        wanted = {r["messageId"] for r in records if self.filters.match(sqs_filter_view(r))}
        by_id = {m["MessageId"]: m for m in messages if m["MessageId"] in wanted}
        if len(wanted) < len(records):
            self.lambdas.activity.note(
                "sqs", f"{spec.logical_id}: {len(records) - len(wanted)} message(s) rejected by the filter criteria"
            )
            self._delete([m for m in messages if m["MessageId"] not in wanted])
        if not by_id:
            return
        result = self.lambdas.invoke(spec, {"Records": [r for r in records if r["messageId"] in wanted]})
        if result.error is not None:
            failed = set(by_id)
        elif self.mapping.report_batch_item_failures:
            failed = self._failures(json.loads(result.payload or b"null"), set(by_id))
        else:
            failed = set()
        self._delete([m for i, m in by_id.items() if i not in failed])
        if failed:
            self.lambdas.activity.note(
                "sqs", f"{spec.logical_id}: {len(failed)} of {len(messages)} message(s) failed; SQS will redeliver them"
            )
            if self.clock_speed > 1:
                timeout = int(self.visibility_timeout / self.clock_speed)
                entries = [
                    {"Id": str(n), "ReceiptHandle": by_id[i]["ReceiptHandle"], "VisibilityTimeout": timeout}
                    for n, i in enumerate(sorted(failed))
                ]
                for start in range(0, len(entries), 10):
                    self.sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=entries[start : start + 10])

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            entries = [
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages[start : start + 10])
            ]
            self.sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)

    def _failures(self, response: Any, ids: set[str]) -> set[str]:
        """Lambda's reading of a partial batch response: a malformed one fails the whole batch."""
        if response is None or (isinstance(response, dict) and not response.get("batchItemFailures")):
            return set()
        if not isinstance(response, dict) or not isinstance(response["batchItemFailures"], list):
            return ids
        failed = set()
        for item in response["batchItemFailures"]:
            identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
            if not identifier or identifier not in ids:
                return ids
            failed.add(identifier)
        return failed


class DynamoDBStreamPoller:
    """A DynamoDB stream event source mapping: reads the table's stream in order, drops records
    its filter criteria reject, and invokes the function with batches shaped as Lambda's. A
    failed batch is retried (from the first reported failure with ReportBatchItemFailures, or
    halved with BisectBatchOnFunctionError) up to MaximumRetryAttempts, then described to the
    on-failure destination, as Lambda does; the shard waits meanwhile."""

    def __init__(self, mapping: EventSourceMapping, lambdas: LambdaService, clients: Any, clock_speed: float) -> None:
        self.mapping = mapping
        self.lambdas = lambdas
        self.streams = clients.client("dynamodbstreams")
        self.clock_speed = clock_speed
        self.region = lambdas.deployment.region
        self.filters = Filters(mapping.filters)
        self._stopping = threading.Event()
        self.in_flight = 0

    def start(self) -> None:
        spec = self.lambdas.deployment.functions[self.mapping.function_name]
        threading.Thread(target=self._loop, name=f"ddb-stream-{spec.logical_id}", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()

    def _record(self, record: dict[str, Any]) -> dict[str, Any]:
        change = dict(record["dynamodb"])
        created = change.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            change["ApproximateCreationDateTime"] = int(created.timestamp())
        return {
            **record,
            "eventVersion": "1.1",
            "awsRegion": self.region,
            "dynamodb": change,
            "eventSourceARN": self.mapping.source_arn,
        }

    def _loop(self) -> None:
        spec = self.lambdas.deployment.functions[self.mapping.function_name]
        arn = self.mapping.source_arn
        iterator = None
        pending: list[dict[str, Any]] = []
        while not self._stopping.is_set():
            try:
                if iterator is None:
                    shards = self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
                    if not shards:
                        self._stopping.wait(1)
                        continue
                    iterator = self.streams.get_shard_iterator(
                        StreamArn=arn, ShardId=shards[0]["ShardId"], ShardIteratorType=self.mapping.starting_position
                    )["ShardIterator"]
                response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                iterator = response.get("NextShardIterator")
                pending.extend(r for r in map(self._record, response.get("Records", [])) if self.filters.match(r))
            except Exception as error:
                if self._stopping.is_set():
                    return
                self.lambdas.activity.note("ddb", f"stream read failed: {error!r}", logging.WARNING)
                iterator = None
                self._stopping.wait(1)
                continue
            if not pending:
                self._stopping.wait(max(0.25, self.mapping.batching_window_seconds / 4))
                continue
            batch, pending = pending[: self.mapping.batch_size], pending[self.mapping.batch_size :]
            self.in_flight += 1
            try:
                self._deliver(spec, batch)
            finally:
                self.in_flight -= 1

    def _deliver(self, spec: FunctionSpec, batch: list[dict[str, Any]]) -> None:
        tries = 0
        while batch and not self._stopping.is_set():
            tries += 1
            result = self.lambdas.invoke(spec, {"Records": batch})
            if result.error is None and not self.mapping.report_batch_item_failures:
                return
            if result.error is None:
                sequence = {r["dynamodb"]["SequenceNumber"]: i for i, r in enumerate(batch)}
                failed = self._first_failure(json.loads(result.payload or b"null"), sequence)
                if failed is None:
                    return
                batch = batch[failed:]
            elif self.mapping.bisect_on_error and len(batch) > 1:
                half = len(batch) // 2
                self._deliver(spec, batch[:half])
                self._deliver(spec, batch[half:])
                return
            if 0 <= self.mapping.maximum_retry_attempts < tries:
                self._give_up(spec, batch, tries, result)
                return
            self._stopping.wait(min(2 ** (tries - 1), 30) / self.clock_speed)

    @staticmethod
    def _first_failure(response: Any, sequence: dict[str, int]) -> int | None:
        """Index of the batch's first failed record; a malformed response fails the whole batch."""
        if response is None or (isinstance(response, dict) and not response.get("batchItemFailures")):
            return None
        try:
            return min(sequence[item["itemIdentifier"]] for item in response["batchItemFailures"])
        except (KeyError, TypeError):
            return 0

    def _give_up(self, spec: FunctionSpec, batch: list[dict[str, Any]], tries: int, result: InvokeResult) -> None:
        message = f"{spec.logical_id}: gave up on {len(batch)} stream record(s) after {tries} attempts"
        self.lambdas.activity.note("ddb", message, logging.WARNING)
        if not self.mapping.on_failure:
            return
        first, last = batch[0]["dynamodb"], batch[-1]["dynamodb"]
        record = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": spec.arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": tries,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                **({"functionError": "Unhandled"} if result.error else {}),
            },
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "DDBStreamBatchInfo": {
                "shardId": "shard-local",
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": first.get("ApproximateCreationDateTime"),
                "approximateArrivalOfLastRecord": last.get("ApproximateCreationDateTime"),
                "batchSize": len(batch),
                "streamArn": self.mapping.source_arn,
            },
        }
        self.lambdas.send_to_arn(self.mapping.on_failure, json.dumps(record, default=str), {})
