"""Creators of compute resources: Lambda, Step Functions, Batch, Glue, EventBridge Scheduler."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from typing import Any

from jobline_local.deploy.api_params import api_params
from jobline_local.deploy.deployment import EventSourceMapping, FunctionSpec, InvokeConfig
from jobline_local.deploy.template import Physical, TemplateError


def _dummy_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "jobline local: the code runs from its source directory\n")
    return buffer.getvalue()


class Compute:
    """Mixed into Deployer, which gives them `client`, `name`, `arn`, `resolver` and `deployment`."""

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
