"""Create the resources of a translated template in the local AWS, with plain API calls.

moto's own CloudFormation is not used: it ignores DefinitionSubstitutions, a bucket's
EventBridge configuration and the Ref of an event bus, and creates state machines outside the
executing engine (see shared notes). Each supported type has a creator below; a type without
one is reported and skipped.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
import zipfile
from pathlib import Path
from typing import Any

from jobline_local.deploy.deployment import Deployment, EventSourceMapping, FunctionSpec, InvokeConfig
from jobline_local.deploy.template import Physical, Resolver, TemplateError, Translated, creation_order

log = logging.getLogger("jobline_local.deploy")


class _AnyAttribute(dict):
    """Attributes of a placeholder resource: every GetAtt gets its ARN."""

    def __init__(self, arn: str) -> None:
        super().__init__()
        self.arn = arn

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return self.arn


def _dummy_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "jobline local: the code runs from its source directory\n")
    return buffer.getvalue()


def api_params(client: Any, operation: str, props: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation properties (PascalCase) -> the API's parameters, by botocore's input shape.
    Members are matched case-insensitively; properties the API does not take are dropped."""
    shape = client.meta.service_model.operation_model(operation).input_shape
    return _convert(props, shape)


def _convert(value: Any, shape: Any) -> Any:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return value
        members = {name.lower(): name for name in shape.members}
        out = {}
        for key, item in value.items():
            name = members.get(key.lower())
            if name is not None:
                out[name] = _convert(item, shape.members[name])
        return out
    if kind == "list":
        return [_convert(v, shape.member) for v in (value if isinstance(value, list) else [value])]
    if kind == "map":
        return {k: _convert(v, shape.value) for k, v in value.items()}
    if kind in ("integer", "long"):
        return int(value)
    if kind in ("float", "double"):
        return float(value)
    if kind == "boolean":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if kind == "string" and not isinstance(value, str):
        return (
            json.dumps(value)
            if isinstance(value, dict | list)
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )
    return value


class Deployer:
    def __init__(
        self, session: Any, endpoint: str, translated: Translated, parameters: dict[str, Any], stack_name: str
    ):
        self.session = session
        self.endpoint = endpoint
        self.translated = translated
        self.cfn = translated.cfn
        self.stack_name = stack_name
        self._clients: dict[str, Any] = {}
        self.region = session.region_name
        self.account_id = self.client("sts").get_caller_identity()["Account"]
        azs = [z["ZoneName"] for z in self.client("ec2").describe_availability_zones()["AvailabilityZones"]]
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{stack_name}/local",
        }
        self.resolver = Resolver(self.cfn, parameters, pseudo, azs)
        self.deployment = Deployment(stack_name=stack_name, region=self.region, account_id=self.account_id)
        self.layer_dirs: dict[str, Path] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, endpoint_url=self.endpoint)
        return self._clients[service]

    def name(self, logical_id: str, limit: int = 64, lower: bool = False) -> str:
        text = f"{self.stack_name}-{logical_id}"
        return (text.lower() if lower else text)[:limit]

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account_id}:{resource}"

    # ------------------------------------------------------------ the run
    def deploy(self, extra_environment: dict[str, str] | None = None) -> Deployment:
        resources = self.cfn["Resources"]
        self.extra_environment = extra_environment or {}
        for logical_id in creation_order(resources):
            resource = resources[logical_id]
            condition = resource.get("Condition")
            if condition and not self.resolver.condition(condition):
                continue
            kind = resource["Type"]
            creator = getattr(self, "create_" + kind.replace("::", "_").replace("AWS_", "", 1), None)
            props = self.resolver.resolve(resource.get("Properties", {}))
            if creator is None:
                self.deployment.skipped.append(f"{logical_id} ({kind})")
                physical = self.placeholder(logical_id, kind)
            else:
                try:
                    physical = creator(logical_id, props)
                except Exception as error:
                    raise TemplateError(f"creating {logical_id} ({kind}) failed: {error}") from error
            self.resolver.resources[logical_id] = physical
            self.deployment.resources[logical_id] = physical
            self.deployment.types[logical_id] = kind
        for name, output in self.cfn.get("Outputs", {}).items():
            condition = output.get("Condition")
            if condition and not self.resolver.condition(condition):
                continue
            self.deployment.outputs[name] = self.resolver.resolve(output["Value"])
        return self.deployment

    def placeholder(self, logical_id: str, kind: str, ref: str | None = None) -> Physical:
        """A resource the local stack does not create: names and ARNs that read as its own."""
        service = kind.split("::")[1].lower()
        arn = self.arn(service, f"{kind.split('::')[2].lower()}/{self.name(logical_id)}")
        return Physical(ref=ref or arn, attrs=_AnyAttribute(arn))

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

    # ------------------------------------------------------------ identity
    def create_IAM_Role(self, lid: str, p: dict[str, Any]) -> Physical:
        iam = self.client("iam")
        name = p.get("RoleName") or self.name(lid, 64)
        role = iam.create_role(
            RoleName=name,
            Path=p.get("Path", "/"),
            AssumeRolePolicyDocument=json.dumps(p.get("AssumeRolePolicyDocument", {})),
        )["Role"]
        for policy in p.get("Policies", []):
            document = {"Version": "2012-10-17", **policy["PolicyDocument"]}
            iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(document))
        return Physical(ref=name, attrs={"Arn": role["Arn"], "RoleId": role["RoleId"]})

    def create_IAM_InstanceProfile(self, lid: str, p: dict[str, Any]) -> Physical:
        iam = self.client("iam")
        name = p.get("InstanceProfileName") or self.name(lid, 128)
        profile = iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        for role in p.get("Roles", []):
            iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role)
        return Physical(ref=name, attrs={"Arn": profile["Arn"]})

    # ------------------------------------------------------------ network (Batch compute needs subnets)
    def create_EC2_VPC(self, lid: str, p: dict[str, Any]) -> Physical:
        vpc = self.client("ec2").create_vpc(CidrBlock=p["CidrBlock"])["Vpc"]
        return Physical(ref=vpc["VpcId"], attrs={"VpcId": vpc["VpcId"], "CidrBlock": vpc["CidrBlock"]})

    def create_EC2_Subnet(self, lid: str, p: dict[str, Any]) -> Physical:
        params = {"VpcId": p["VpcId"], "CidrBlock": p["CidrBlock"]}
        if "AvailabilityZone" in p:
            params["AvailabilityZone"] = p["AvailabilityZone"]
        subnet = self.client("ec2").create_subnet(**params)["Subnet"]
        return Physical(ref=subnet["SubnetId"], attrs={"SubnetId": subnet["SubnetId"]})

    def create_EC2_SecurityGroup(self, lid: str, p: dict[str, Any]) -> Physical:
        params = {"GroupName": p.get("GroupName") or self.name(lid, 255), "Description": p["GroupDescription"]}
        if "VpcId" in p:
            params["VpcId"] = p["VpcId"]
        group = self.client("ec2").create_security_group(**params)["GroupId"]
        return Physical(ref=group, attrs={"GroupId": group})

    def create_EC2_InternetGateway(self, lid: str, p: dict[str, Any]) -> Physical:
        gateway = self.client("ec2").create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        return Physical(ref=gateway, attrs={"InternetGatewayId": gateway})

    def create_EC2_VPCGatewayAttachment(self, lid: str, p: dict[str, Any]) -> Physical:
        self.client("ec2").attach_internet_gateway(InternetGatewayId=p["InternetGatewayId"], VpcId=p["VpcId"])
        return Physical(ref=lid)

    def create_EC2_RouteTable(self, lid: str, p: dict[str, Any]) -> Physical:
        table = self.client("ec2").create_route_table(VpcId=p["VpcId"])["RouteTable"]["RouteTableId"]
        return Physical(ref=table, attrs={"RouteTableId": table})

    def create_EC2_Route(self, lid: str, p: dict[str, Any]) -> Physical:
        self.client("ec2").create_route(**api_params(self.client("ec2"), "CreateRoute", p))
        return Physical(ref=lid)

    def create_EC2_SubnetRouteTableAssociation(self, lid: str, p: dict[str, Any]) -> Physical:
        association = self.client("ec2").associate_route_table(SubnetId=p["SubnetId"], RouteTableId=p["RouteTableId"])
        return Physical(ref=association["AssociationId"])

    # ------------------------------------------------------------ compute
    def create_Lambda_LayerVersion(self, lid: str, p: dict[str, Any]) -> Physical:
        lam = self.client("lambda")
        name = p.get("LayerName") or self.name(lid, 140)
        arn = lam.publish_layer_version(
            LayerName=name, Content={"ZipFile": _dummy_zip()}, CompatibleRuntimes=p.get("CompatibleRuntimes", [])
        )["LayerVersionArn"]
        if lid in self.translated.code_dirs:
            self.layer_dirs[arn] = self.translated.code_dirs[lid]
        return Physical(ref=arn, attrs={"LayerVersionArn": arn})

    def create_Lambda_Function(self, lid: str, p: dict[str, Any]) -> Physical:
        lam = self.client("lambda")
        name = p.get("FunctionName") or self.name(lid, 64)
        environment = {k: str(v) for k, v in p.get("Environment", {}).get("Variables", {}).items()}
        environment.update(self.extra_environment)
        params: dict[str, Any] = {
            "FunctionName": name,
            "Runtime": p.get("Runtime", "python3.11"),
            "Role": p["Role"],
            "Handler": p.get("Handler", "app.handler"),
            "Code": {"ZipFile": _dummy_zip()},
            "Timeout": int(p.get("Timeout", 3)),
            "MemorySize": int(p.get("MemorySize", 128)),
            "Environment": {"Variables": environment},
            "Layers": p.get("Layers", []),
        }
        if "Description" in p:
            params["Description"] = p["Description"]
        if "TracingConfig" in p:
            params["TracingConfig"] = p["TracingConfig"]
        config = lam.create_function(**params)
        if "ReservedConcurrentExecutions" in p:
            lam.put_function_concurrency(
                FunctionName=name, ReservedConcurrentExecutions=int(p["ReservedConcurrentExecutions"])
            )
        code_dir = self.translated.code_dirs.get(lid)  # SAM keeps the function's logical id
        if code_dir is None:
            raise TemplateError(f"function {lid}: only local CodeUri directories can run locally")
        log_group = p.get("LoggingConfig", {}).get("LogGroup") or f"/aws/lambda/{name}"
        self.deployment.functions[name] = FunctionSpec(
            logical_id=lid,
            name=name,
            arn=config["FunctionArn"],
            code_dir=code_dir,
            handler=params["Handler"],
            runtime=params["Runtime"],
            timeout=params["Timeout"],
            memory=params["MemorySize"],
            environment=environment,
            layer_dirs=[self.layer_dirs[arn] for arn in params["Layers"] if arn in self.layer_dirs],
            log_group=log_group,
            reserved_concurrency=int(p["ReservedConcurrentExecutions"])
            if "ReservedConcurrentExecutions" in p
            else None,
            dead_letter_arn=p.get("DeadLetterConfig", {}).get("TargetArn"),
        )
        return Physical(ref=name, attrs={"Arn": config["FunctionArn"]})

    def _function(self, name_or_arn: str) -> FunctionSpec:
        spec = self.deployment.functions.get(name_or_arn) or self.deployment.function_by_arn(name_or_arn)
        if spec is None:
            raise TemplateError(f"no function {name_or_arn} in this stack")
        return spec

    def create_Lambda_EventInvokeConfig(self, lid: str, p: dict[str, Any]) -> Physical:
        spec = self._function(p["FunctionName"])
        destinations = p.get("DestinationConfig", {})
        spec.invoke_config = InvokeConfig(
            maximum_retry_attempts=int(p.get("MaximumRetryAttempts", 2)),
            maximum_event_age_seconds=int(p.get("MaximumEventAgeInSeconds", 6 * 3600)),
            on_failure=destinations.get("OnFailure", {}).get("Destination"),
            on_success=destinations.get("OnSuccess", {}).get("Destination"),
        )
        return Physical(ref=lid)

    def create_Lambda_EventSourceMapping(self, lid: str, p: dict[str, Any]) -> Physical:
        spec = self._function(p["FunctionName"])
        source = p.get("EventSourceArn", "")
        kind = "sqs" if ":sqs:" in source else "dynamodb" if ":dynamodb:" in source and "/stream/" in source else None
        if kind is None:
            self.deployment.skipped.append(f"{lid} (event source {source.split(':')[2]})")
            return Physical(ref=lid)
        mapping = EventSourceMapping(
            uuid=str(uuid.uuid4()),
            function_name=spec.name,
            source_arn=source,
            kind=kind,
            starting_position=p.get("StartingPosition", "LATEST"),
            filters=[f["Pattern"] for f in p.get("FilterCriteria", {}).get("Filters", [])],
            bisect_on_error=p.get("BisectBatchOnFunctionError") in (True, "true"),
            maximum_retry_attempts=int(p.get("MaximumRetryAttempts", -1)),
            on_failure=p.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"),
            batch_size=int(p.get("BatchSize", 10)),
            batching_window_seconds=int(p.get("MaximumBatchingWindowInSeconds", 0)),
            report_batch_item_failures="ReportBatchItemFailures" in p.get("FunctionResponseTypes", []),
            enabled=p.get("Enabled", True) not in (False, "false"),
            maximum_concurrency=p.get("ScalingConfig", {}).get("MaximumConcurrency"),
        )
        self.deployment.event_source_mappings.append(mapping)
        return Physical(ref=mapping.uuid)

    def create_Lambda_Permission(self, lid: str, p: dict[str, Any]) -> Physical:
        return Physical(ref=lid)

    def create_StepFunctions_StateMachine(self, lid: str, p: dict[str, Any]) -> Physical:
        sfn = self.client("stepfunctions")
        definition = p.get("DefinitionString") or json.dumps(p["Definition"])
        for key, value in p.get("DefinitionSubstitutions", {}).items():
            definition = definition.replace("${" + key + "}", str(value))
        json.loads(definition)  # a substitution left the definition invalid: fail here, not at run time
        name = p.get("StateMachineName") or self.name(lid, 80)
        arn = sfn.create_state_machine(
            name=name, definition=definition, roleArn=p["RoleArn"], type=p.get("StateMachineType", "STANDARD")
        )["stateMachineArn"]
        return Physical(ref=arn, attrs={"Arn": arn, "Name": name})

    def create_Batch_ComputeEnvironment(self, lid: str, p: dict[str, Any]) -> Physical:
        batch = self.client("batch")
        params = api_params(batch, "CreateComputeEnvironment", p)
        params.setdefault("computeEnvironmentName", self.name(lid, 128))
        resources = params.get("computeResources", {})
        if resources.get("type") not in ("FARGATE", "FARGATE_SPOT"):
            # EC2 compute would start instances in the local EC2; local jobs run as processes anyway.
            params = {"computeEnvironmentName": params["computeEnvironmentName"], "type": "UNMANAGED"}
        # AWS uses Batch's service-linked role when none is given; the local Batch needs one that exists.
        params.setdefault("serviceRole", self._batch_service_role())
        arn = batch.create_compute_environment(**params)["computeEnvironmentArn"]
        return Physical(ref=arn, attrs={"ComputeEnvironmentArn": arn})

    def _batch_service_role(self) -> str:
        iam = self.client("iam")
        name = "AWSServiceRoleForBatch"
        try:
            return iam.get_role(RoleName=name)["Role"]["Arn"]
        except iam.exceptions.NoSuchEntityException:
            trust = {
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "batch.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ]
            }
            return iam.create_role(
                RoleName=name, Path="/aws-service-role/batch.amazonaws.com/", AssumeRolePolicyDocument=json.dumps(trust)
            )["Role"]["Arn"]

    def create_Batch_ServiceEnvironment(self, lid: str, p: dict[str, Any]) -> Physical:
        batch = self.client("batch")
        params = api_params(batch, "CreateServiceEnvironment", p)
        params.setdefault("serviceEnvironmentName", self.name(lid, 128))
        arn = batch.create_service_environment(**params)["serviceEnvironmentArn"]
        return Physical(ref=arn, attrs={"ServiceEnvironmentArn": arn})

    def create_Batch_JobQueue(self, lid: str, p: dict[str, Any]) -> Physical:
        # Container job queues and service job queues (JobQueueType SAGEMAKER_TRAINING) alike.
        batch = self.client("batch")
        params = api_params(batch, "CreateJobQueue", p)
        params.setdefault("jobQueueName", self.name(lid, 128))
        params.setdefault("state", "ENABLED")
        arn = batch.create_job_queue(**params)["jobQueueArn"]
        return Physical(ref=arn, attrs={"JobQueueArn": arn})

    def create_Batch_JobDefinition(self, lid: str, p: dict[str, Any]) -> Physical:
        batch = self.client("batch")
        params = api_params(batch, "RegisterJobDefinition", p)
        params.setdefault("jobDefinitionName", self.name(lid, 128))
        arn = batch.register_job_definition(**params)["jobDefinitionArn"]
        return Physical(ref=arn, attrs={"JobDefinitionArn": arn})

    def create_Glue_Job(self, lid: str, p: dict[str, Any]) -> Physical:
        glue = self.client("glue")
        params = api_params(glue, "CreateJob", p)
        params.setdefault("Name", self.name(lid, 255))
        glue.create_job(**params)
        return Physical(ref=params["Name"])

    def create_Scheduler_ScheduleGroup(self, lid: str, p: dict[str, Any]) -> Physical:
        name = p.get("Name") or self.name(lid, 64)
        arn = self.client("scheduler").create_schedule_group(Name=name)["ScheduleGroupArn"]
        return Physical(ref=name, attrs={"Arn": arn})

    def create_Scheduler_Schedule(self, lid: str, p: dict[str, Any]) -> Physical:
        scheduler = self.client("scheduler")
        params = api_params(scheduler, "CreateSchedule", p)
        params.setdefault("Name", self.name(lid, 64))
        arn = scheduler.create_schedule(**params)["ScheduleArn"]
        return Physical(ref=params["Name"], attrs={"Arn": arn})
