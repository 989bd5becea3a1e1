"""Create the resources of a translated template in the local AWS, with plain API calls.

moto's own CloudFormation is not used: it ignores DefinitionSubstitutions, a bucket's
EventBridge configuration and the Ref of an event bus, and creates state machines outside the
executing engine (see shared notes). Each supported type has a creator (storage_messaging,
identity_network, compute_resources); a type without one is reported and skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobline_local.deploy.compute_resources import Compute
from jobline_local.deploy.deployment import Deployment
from jobline_local.deploy.identity_network import IdentityAndNetwork
from jobline_local.deploy.storage_messaging import StorageAndMessaging
from jobline_local.deploy.template import Physical, Resolver, TemplateError, Translated, creation_order


class _AnyAttribute(dict):
    """Attributes of a placeholder resource: every GetAtt gets its ARN."""

    def __init__(self, arn: str) -> None:
        super().__init__()
        self.arn = arn

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return self.arn


class Deployer(StorageAndMessaging, IdentityAndNetwork, Compute):
    """Creates each resource of the template in dependency order with the creator of its type
    (`create_<Service>_<Type>`, in the mixins), resolving intrinsics as it goes."""

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
