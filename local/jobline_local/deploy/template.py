"""template.yaml -> plain CloudFormation, offline: YAML with intrinsic tags, the SAM transform
(samtranslator, no AWS call), and an evaluator of the intrinsic functions the stack uses."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

NO_VALUE = object()
PSEUDO = ("AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::StackName", "AWS::URLSuffix", "AWS::StackId")
LOCAL_CODE_BUCKET = "jobline-local-code"


# ---------------------------------------------------------------- YAML with CloudFormation tags
class _CfnLoader(yaml.SafeLoader):
    pass


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def parse_yaml(text: str) -> dict[str, Any]:
    return yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass with intrinsic tags only


# ---------------------------------------------------------------- SAM -> CloudFormation
@dataclass
class Translated:
    cfn: dict[str, Any]
    code_dirs: dict[str, Path] = field(default_factory=dict)  # function or layer logical id (SAM) -> dir


class _OfflinePolicies(dict):
    """Managed policy names -> ARNs without asking IAM (local IAM does not enforce policies)."""

    def __missing__(self, name: str) -> str:
        return f"arn:aws:iam::aws:policy/{name}"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str)


def translate(
    sam: dict[str, Any], base_dir: Path, parameters: dict[str, Any], region: str, account_id: str, stack_name: str
) -> Translated:
    """The SAM transform, offline. Local code locations are swapped for placeholders (the local
    Lambda runs code from its directory) and DefinitionUri files are inlined."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import to_py27_compatible_template, undo_mark_unicode_str_in_template

    sam = json.loads(json.dumps(sam))
    code_dirs: dict[str, Path] = {}
    global_fn = sam.get("Globals", {}).get("Function", {})
    for logical_id, resource in sam.get("Resources", {}).items():
        props = resource.setdefault("Properties", {})
        kind = resource.get("Type")
        if kind == "AWS::Serverless::Function":
            uri = props.get("CodeUri", global_fn.get("CodeUri"))
            if isinstance(uri, str) and not uri.startswith("s3://"):
                code_dirs[logical_id] = (base_dir / uri).resolve()
            props["CodeUri"] = f"s3://{LOCAL_CODE_BUCKET}/{logical_id}.zip"
        elif kind == "AWS::Serverless::LayerVersion":
            uri = props.get("ContentUri")
            if isinstance(uri, str) and not uri.startswith("s3://"):
                code_dirs[logical_id] = (base_dir / uri).resolve()
            props["ContentUri"] = f"s3://{LOCAL_CODE_BUCKET}/{logical_id}.zip"
        elif kind == "AWS::Serverless::StateMachine" and isinstance(props.get("DefinitionUri"), str):
            props["Definition"] = json.loads((base_dir / props.pop("DefinitionUri")).read_text())
    values = {
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "AWS::Partition": "aws",
        "AWS::StackName": stack_name,
        **parameters,
    }
    to_py27_compatible_template(sam, values)
    # Only for the region: the translator makes no call with it.
    session = boto3.Session(
        region_name=region, **dict.fromkeys(("aws_access_key_id", "aws_secret_access_key"), "offline")
    )
    policies = _OfflinePolicies()
    cfn = Translator(None, Parser(), boto_session=session).translate(
        sam, parameter_values=values, get_managed_policy_map=lambda: policies
    )
    cfn = json.loads(json.dumps(undo_mark_unicode_str_in_template(cfn)))
    # SAM names a layer `<LogicalId><hash>`: follow the code directory to its new logical id.
    for logical_id, resource in cfn["Resources"].items():
        if resource["Type"] == "AWS::Lambda::LayerVersion":
            key = resource["Properties"].get("Content", {}).get("S3Key", "")
            original = key.removesuffix(".zip")
            if original in code_dirs:
                code_dirs[logical_id] = code_dirs[original]
    return Translated(cfn=cfn, code_dirs=code_dirs)


# ---------------------------------------------------------------- intrinsic functions
class TemplateError(Exception):
    pass


@dataclass
class Physical:
    ref: Any
    attrs: dict[str, Any] = field(default_factory=dict)


class Resolver:
    """Evaluates Ref, Fn::GetAtt, Fn::Sub, Fn::If, ... against parameters, conditions and the
    resources created so far."""

    def __init__(self, cfn: dict[str, Any], parameters: dict[str, Any], pseudo: dict[str, Any], azs: list[str]):
        self.cfn = cfn
        self.azs = azs
        self.values: dict[str, Any] = dict(pseudo)
        for name, spec in cfn.get("Parameters", {}).items():
            value = parameters.get(name, spec.get("Default"))
            if value is None:
                raise TemplateError(f"parameter {name} has no value and no default")
            if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                value = value.split(",") if value else [""]
            self.values[name] = value
        self.resources: dict[str, Physical] = {}
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self._eval_condition(self.cfn["Conditions"][name]))
        return self._conditions[name]

    def _eval_condition(self, node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Equals":
                left, right = (self.resolve(a) for a in arg)
                return str(left) == str(right) if not isinstance(left, list) else left == right
            if key == "Fn::Not":
                return not self._eval_condition(arg[0])
            if key == "Fn::And":
                return all(self._eval_condition(a) for a in arg)
            if key == "Fn::Or":
                return any(self._eval_condition(a) for a in arg)
        return self.resolve(node)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(v) for v in node]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            handler = _INTRINSICS.get(key)
            if handler is not None:
                return handler(self, arg)
        out = {}
        for key, value in node.items():
            resolved = self.resolve(value)
            if resolved is not NO_VALUE:
                out[key] = resolved
        return out

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.values:
            return self.values[name]
        if name in self.resources:
            return self.resources[name].ref
        raise TemplateError(f"Ref {name}: not a parameter or a created resource")

    def get_att(self, arg: Any) -> Any:
        logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
        attribute = self.resolve(attribute)
        physical = self.resources.get(logical_id)
        if physical is None:
            raise TemplateError(f"GetAtt {logical_id}.{attribute}: resource not created")
        if attribute not in physical.attrs:
            raise TemplateError(f"GetAtt {logical_id}.{attribute}: the local stack does not know this attribute")
        return physical.attrs[attribute]

    def sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                return str(self.get_att(name.split(".", 1)))
            value = self.ref(name)
            return ",".join(value) if isinstance(value, list) else str(value)

        return re.sub(r"\$\{([^}]+)\}", replace, text)


def _join(r: Resolver, arg: Any) -> str:
    sep, items = arg
    values = r.resolve(items)
    return str(sep).join(str(v) for v in values)


def _if(r: Resolver, arg: Any) -> Any:
    name, yes, no = arg
    return r.resolve(yes if r.condition(name) else no)


def _select(r: Resolver, arg: Any) -> Any:
    index, items = arg
    return r.resolve(items)[int(r.resolve(index))]


def _split(r: Resolver, arg: Any) -> list[str]:
    sep, text = arg
    return str(r.resolve(text)).split(sep)


def _find_in_map(r: Resolver, arg: Any) -> Any:
    name, first, second = (r.resolve(a) for a in arg)
    return r.cfn["Mappings"][name][first][second]


def _base64(r: Resolver, arg: Any) -> str:
    import base64

    return base64.b64encode(str(r.resolve(arg)).encode()).decode()


_INTRINSICS = {
    "Ref": lambda r, arg: r.ref(arg),
    "Fn::GetAtt": lambda r, arg: r.get_att(arg),
    "Fn::Sub": lambda r, arg: r.sub(arg),
    "Fn::Join": _join,
    "Fn::If": _if,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::GetAZs": lambda r, arg: list(r.azs),
    "Fn::FindInMap": _find_in_map,
    "Fn::Base64": _base64,
    "Condition": lambda r, arg: r.condition(arg),
    "Fn::Equals": lambda r, arg: r._eval_condition({"Fn::Equals": arg}),
    "Fn::Not": lambda r, arg: r._eval_condition({"Fn::Not": arg}),
    "Fn::And": lambda r, arg: r._eval_condition({"Fn::And": arg}),
    "Fn::Or": lambda r, arg: r._eval_condition({"Fn::Or": arg}),
}


def dependencies(resource: dict[str, Any], names: set[str]) -> set[str]:
    """Logical ids a resource refers to (Ref, GetAtt, Sub, DependsOn)."""
    found: set[str] = set()
    depends = resource.get("DependsOn", [])
    found.update([depends] if isinstance(depends, str) else depends)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "Ref" and isinstance(value, str):
                    found.add(value)
                elif key == "Fn::GetAtt":
                    found.add(value[0] if isinstance(value, list) else value.split(".")[0])
                elif key == "Fn::Sub":
                    text = value if isinstance(value, str) else value[0]
                    for name in re.findall(r"\$\{([^}!][^}]*)\}", text):
                        found.add(name.split(".")[0])
                    walk(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(resource.get("Properties", {}))
    return found & names


def creation_order(resources: dict[str, dict[str, Any]]) -> list[str]:
    names = set(resources)
    deps = {name: dependencies(res, names) for name, res in resources.items()}
    order: list[str] = []
    done: set[str] = set()
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            raise TemplateError(f"circular dependency through {name}")
        visiting.add(name)
        for dep in sorted(deps[name]):
            visit(dep)
        visiting.discard(name)
        done.add(name)
        order.append(name)

    for name in resources:
        visit(name)
    return order
