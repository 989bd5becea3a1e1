"""Creators of storage and messaging resources: S3, DynamoDB, SQS, SNS, EventBridge, Logs."""

from __future__ import annotations

import json
from typing import Any

from jobline_local.deploy.api_params import api_params
from jobline_local.deploy.template import Physical


class StorageAndMessaging:
    """Mixed into Deployer, which gives them `client`, `name`, `arn`, `resolver` and `deployment`."""

    # ------------------------------------------------------------ storage
    def create_S3_Bucket(self, lid: str, p: dict[str, Any]) -> Physical:
        s3 = self.client("s3")
        name = p.get("BucketName") or self.name(lid, 63, lower=True)
        s3.create_bucket(Bucket=name)
        if p.get("VersioningConfiguration", {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        notification = p.get("NotificationConfiguration", {})
        if notification.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled") in (True, "true"):
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )
        return Physical(
            ref=name,
            attrs={
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{self.region}.amazonaws.com",
            },
        )

    def create_S3_BucketPolicy(self, lid: str, p: dict[str, Any]) -> Physical:
        return Physical(ref=p.get("Bucket", lid))  # policies are not enforced locally

    def create_DynamoDB_Table(self, lid: str, p: dict[str, Any]) -> Physical:
        ddb = self.client("dynamodb")
        name = p.get("TableName") or self.name(lid, 255)
        params = api_params(ddb, "CreateTable", {**p, "TableName": name})
        params.pop("SSESpecification", None)
        if "StreamSpecification" in params:
            params["StreamSpecification"] = {"StreamEnabled": True, **params["StreamSpecification"]}
        if params.get("BillingMode") != "PAY_PER_REQUEST" and "ProvisionedThroughput" not in params:
            params["BillingMode"] = "PAY_PER_REQUEST"
        description = ddb.create_table(**params)["TableDescription"]
        ttl = p.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled") in (True, "true"):
            ddb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
            )
        return Physical(
            ref=name, attrs={"Arn": description["TableArn"], "StreamArn": description.get("LatestStreamArn")}
        )

    # ------------------------------------------------------------ messaging
    def create_SQS_Queue(self, lid: str, p: dict[str, Any]) -> Physical:
        sqs = self.client("sqs")
        fifo = p.get("FifoQueue") in (True, "true")
        name = p.get("QueueName") or self.name(lid, 75) + (".fifo" if fifo else "")
        attributes = {}
        for key, value in p.items():
            if key in ("QueueName", "Tags", "SqsManagedSseEnabled", "KmsMasterKeyId"):
                continue
            attributes[key] = (
                json.dumps(value)
                if isinstance(value, dict)
                else str(value).lower()
                if isinstance(value, bool)
                else str(value)
            )
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = self.arn("sqs", name)
        return Physical(ref=url, attrs={"Arn": arn, "QueueName": name, "QueueUrl": url})

    def create_SQS_QueuePolicy(self, lid: str, p: dict[str, Any]) -> Physical:
        return Physical(ref=lid)

    def create_SNS_Topic(self, lid: str, p: dict[str, Any]) -> Physical:
        arn = self.client("sns").create_topic(Name=p.get("TopicName") or self.name(lid, 256))["TopicArn"]
        return Physical(ref=arn, attrs={"TopicArn": arn, "TopicName": arn.split(":")[-1]})

    def create_Events_EventBus(self, lid: str, p: dict[str, Any]) -> Physical:
        arn = self.client("events").create_event_bus(Name=p["Name"])["EventBusArn"]
        return Physical(ref=p["Name"], attrs={"Arn": arn, "Name": p["Name"]})

    def create_Events_Rule(self, lid: str, p: dict[str, Any]) -> Physical:
        events = self.client("events")
        name = p.get("Name") or self.name(lid, 64)
        bus = p.get("EventBusName", "default")
        params: dict[str, Any] = {"Name": name, "EventBusName": bus, "State": p.get("State", "ENABLED")}
        if "EventPattern" in p:
            params["EventPattern"] = json.dumps(p["EventPattern"])
        if "ScheduleExpression" in p:
            params["ScheduleExpression"] = p["ScheduleExpression"]
        if "Description" in p:
            params["Description"] = p["Description"]
        arn = events.put_rule(**params)["RuleArn"]
        targets = p.get("Targets", [])
        if targets:
            events.put_targets(
                Rule=name, EventBusName=bus, Targets=api_params(events, "PutTargets", {"Targets": targets})["Targets"]
            )
        return Physical(ref=name, attrs={"Arn": arn})

    def create_Logs_LogGroup(self, lid: str, p: dict[str, Any]) -> Physical:
        name = p.get("LogGroupName") or self.name(lid, 512)
        self.client("logs").create_log_group(logGroupName=name)
        return Physical(ref=name, attrs={"Arn": self.arn("logs", f"log-group:{name}:*")})
