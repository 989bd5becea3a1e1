"""Creators of IAM and VPC resources (Batch compute environments need subnets)."""

from __future__ import annotations

import json
from typing import Any

from jobline_local.deploy.api_params import api_params
from jobline_local.deploy.template import Physical


class IdentityAndNetwork:
    """Mixed into Deployer, which gives them `client`, `name`, `arn`, `resolver` and `deployment`."""

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
