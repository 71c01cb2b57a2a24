"""Deploy rules: what AWS refuses at deploy time, or accepts and then silently breaks, checked at synth.

cfn-lint knows the resource specification and cdk-nag's AwsSolutions knows security practice; neither knows
that API Gateway refuses a WebSocket stage logging ``$context.httpMethod``, that a topic policy written by
``enforce_ssl`` locks CloudWatch out, or that an ECS service created before its cluster's capacity-provider
association fails. Each rule here encodes one such fact, with the AWS document it comes from in its
explanation, and runs beside AwsSolutionsChecks (``app.py``) at error level: a violation stops synth.
Acknowledge a finding like any cdk-nag rule (``constructs_lib.nag.acknowledge``), on the narrowest construct.

The rules read the synthesized templates (written before validation plugins run), so they see what
CloudFormation will see: rendered ``DependsOn``, resolved references and other stacks' exports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import CfnResource, Stack, Stage
from cdk_nag import IApplyRule, NagMessageLevel, NagPack, NagRuleCompliance

PACK = "Deploy"
ACCESS_LOG_VARIABLES = json.loads((Path(__file__).parent / "data" / "apigw_access_log_variables.json").read_text())
_VARIABLE = re.compile(r"\$context\.[A-Za-z][A-Za-z0-9_.]*[A-Za-z0-9_]")
SOURCE_KEYS = ("aws:sourceaccount", "aws:sourcearn", "aws:sourceorgid", "aws:sourceowner")

Result = Any  # NagRuleCompliance | list[str] (one finding id each)


# ----------------------------------------------------------------------------- the synthesized templates
@dataclass(frozen=True)
class Ref:
    """A resource (and attribute) a property points at, whichever template holds it."""

    template: str
    logical_id: str
    attribute: str = "Ref"


class Assembly:
    """The cloud assembly's templates as CloudFormation will read them, with cross-stack exports resolved."""

    _cache: dict[tuple[str, int], Assembly] = {}

    def __init__(self, outdir: Path) -> None:
        self.templates: dict[str, dict[str, Any]] = {
            p.name: json.loads(p.read_text()) for p in sorted(outdir.glob("*.template.json"))
        }
        self.exports: dict[str, tuple[str, Any]] = {}
        for name, template in self.templates.items():
            for output in template.get("Outputs", {}).values():
                export = output.get("Export", {}).get("Name")
                if isinstance(export, str):
                    self.exports[export] = (name, output["Value"])

    @classmethod
    def of(cls, node: CfnResource) -> Assembly:
        outdir = Path(Stage.of(node).outdir)  # type: ignore[union-attr]
        stamp = sum(p.stat().st_mtime_ns for p in outdir.glob("*.template.json"))
        key = (str(outdir), stamp)
        if key not in cls._cache:
            cls._cache = {key: cls(outdir)}
        return cls._cache[key]

    def ref(self, template: str, value: Any) -> Ref | None:
        """What ``value`` (Ref, Fn::GetAtt or Fn::ImportValue) names, or None for anything else."""
        if not isinstance(value, dict) or len(value) != 1:
            return None
        [(fn, arg)] = value.items()
        if fn == "Ref" and isinstance(arg, str):
            return Ref(template, arg)
        if fn == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return Ref(template, logical, attribute)
        if fn == "Fn::ImportValue" and isinstance(arg, str) and arg in self.exports:
            return self.ref(*self.exports[arg])
        return None

    def resource(self, ref: Ref) -> dict[str, Any]:
        return dict(self.templates[ref.template]["Resources"].get(ref.logical_id, {}))

    def each(self, rtype: str) -> Iterator[tuple[Ref, dict[str, Any]]]:
        for name, template in self.templates.items():
            for logical, resource in template["Resources"].items():
                if resource["Type"] == rtype:
                    yield Ref(name, logical), resource.get("Properties", {})


@dataclass(frozen=True)
class Subject:
    """The resource under check: its template, logical id, rendered resource and the assembly."""

    assembly: Assembly
    me: Ref
    resource: dict[str, Any]

    @property
    def props(self) -> dict[str, Any]:
        return dict(self.resource.get("Properties", {}))

    @property
    def depends_on(self) -> set[str]:
        deps = self.resource.get("DependsOn", [])
        return {deps} if isinstance(deps, str) else set(deps)

    def points_at_me(self, value: Any, attribute: str | None = None) -> bool:
        ref = self.assembly.ref(self.me.template, value)
        return (
            ref is not None
            and (ref.template, ref.logical_id) == (self.me.template, self.me.logical_id)
            and (attribute is None or ref.attribute == attribute)
        )


def _statements(document: Any) -> list[dict[str, Any]]:
    statements = (document or {}).get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _services(statement: dict[str, Any]) -> list[str]:
    principal = statement.get("Principal", {})
    return [str(s) for s in _listed(principal.get("Service", []))] if isinstance(principal, dict) else []


def _actions(statement: dict[str, Any]) -> set[str]:
    return {str(a).lower() for a in _listed(statement.get("Action", []))}


def _allows(statement: dict[str, Any], service: str, *actions: str) -> bool:
    granted = _actions(statement)
    prefix = actions[0].split(":", 1)[0].lower()
    return (
        statement.get("Effect") == "Allow"
        and service in _services(statement)
        and ("*" in granted or f"{prefix}:*" in granted or all(a.lower() in granted for a in actions))
    )


# ----------------------------------------------------------------------------- the rules
def access_log_variables(s: Subject) -> Result:
    """AWS::ApiGatewayV2::Stage: every access-log variable exists for the API's protocol."""
    if s.resource["Type"] != "AWS::ApiGatewayV2::Stage":
        return NagRuleCompliance.NOT_APPLICABLE
    fmt = s.props.get("AccessLogSettings", {}).get("Format")
    api = s.assembly.ref(s.me.template, s.props.get("ApiId"))
    protocol = s.assembly.resource(api).get("Properties", {}).get("ProtocolType") if api else None
    if not isinstance(fmt, str) or protocol not in ACCESS_LOG_VARIABLES:
        return NagRuleCompliance.NOT_APPLICABLE
    allowed = ACCESS_LOG_VARIABLES[protocol]
    exact = {v for v in allowed if "{" not in v}
    prefixes = tuple(v.split("{", 1)[0] for v in allowed if "{" in v)
    bad = sorted({v for v in _VARIABLE.findall(fmt) if v not in exact and not v.startswith(prefixes)})
    return bad or NagRuleCompliance.COMPLIANT


def _logs_through_account_role(resource: dict[str, Any]) -> bool:
    props = resource.get("Properties", {})
    if resource["Type"] == "AWS::ApiGateway::Stage":  # REST: access logs or execution logs
        settings = props.get("MethodSettings", [])
        return bool(props.get("AccessLogSetting")) or any(
            m.get("LoggingLevel") in ("INFO", "ERROR") or m.get("DataTraceEnabled") for m in settings
        )
    route = props.get("DefaultRouteSettings", {})
    return bool(props.get("AccessLogSettings")) or route.get("LoggingLevel") in ("INFO", "ERROR")


def api_gateway_account_role(s: Subject) -> Result:
    """WebSocket and REST stages that log wait for the account's CloudWatch role (AWS::ApiGateway::Account)."""
    rtype = s.resource["Type"]
    if rtype == "AWS::ApiGatewayV2::Stage":
        api = s.assembly.ref(s.me.template, s.props.get("ApiId"))
        if not api or s.assembly.resource(api).get("Properties", {}).get("ProtocolType") != "WEBSOCKET":
            return NagRuleCompliance.NOT_APPLICABLE  # HTTP APIs deliver their logs without the account role
    elif rtype != "AWS::ApiGateway::Stage":
        return NagRuleCompliance.NOT_APPLICABLE
    if not _logs_through_account_role(s.resource):
        return NagRuleCompliance.NOT_APPLICABLE
    resources = s.assembly.templates[s.me.template]["Resources"]
    accounts = {
        logical
        for logical in s.depends_on
        if resources.get(logical, {}).get("Type") == "AWS::ApiGateway::Account"
        and resources[logical].get("Properties", {}).get("CloudWatchRoleArn")
    }
    return NagRuleCompliance.COMPLIANT if accounts else NagRuleCompliance.NON_COMPLIANT


def alarm_topic_publishable(s: Subject) -> Result:
    """AWS::SNS::Topic an alarm notifies: its topic policy and key policy let CloudWatch publish."""
    if s.resource["Type"] != "AWS::SNS::Topic":
        return NagRuleCompliance.NOT_APPLICABLE
    notified = any(
        s.points_at_me(action)
        for _, alarm in s.assembly.each("AWS::CloudWatch::Alarm")
        for key in ("AlarmActions", "OKActions", "InsufficientDataActions")
        for action in alarm.get(key, [])
    )
    if not notified:
        return NagRuleCompliance.NOT_APPLICABLE
    findings = []
    for _, policy in s.assembly.each("AWS::SNS::TopicPolicy"):
        if any(s.points_at_me(t) for t in policy.get("Topics", [])) and not any(
            _allows(st, "cloudwatch.amazonaws.com", "sns:Publish") for st in _statements(policy.get("PolicyDocument"))
        ):
            findings.append("TopicPolicy")
    key_id = s.props.get("KmsMasterKeyId")
    if isinstance(key_id, str) and key_id.endswith("alias/aws/sns"):
        findings.append("AwsManagedKey")  # CloudWatch cannot use the AWS managed key
    key = s.assembly.ref(s.me.template, key_id)
    if key is not None:
        statements = _statements(s.assembly.resource(key).get("Properties", {}).get("KeyPolicy"))
        if not any(
            _allows(st, "cloudwatch.amazonaws.com", "kms:Decrypt", "kms:GenerateDataKey*")
            or _allows(st, "cloudwatch.amazonaws.com", "kms:Decrypt", "kms:GenerateDataKey")
            for st in statements
        ):
            findings.append("KeyPolicy")
    return findings or NagRuleCompliance.COMPLIANT


_RESOURCE_POLICIES = {
    "AWS::KMS::Key": "KeyPolicy",
    "AWS::SNS::TopicPolicy": "PolicyDocument",
    "AWS::SQS::QueuePolicy": "PolicyDocument",
}


def service_principal_source_condition(s: Subject) -> Result:
    """Key, topic and queue policies that allow an AWS service name the source account or resource."""
    field = _RESOURCE_POLICIES.get(s.resource["Type"])
    if field is None:
        return NagRuleCompliance.NOT_APPLICABLE
    findings = []
    for n, st in enumerate(_statements(s.props.get(field))):
        if st.get("Effect") != "Allow" or not _services(st):
            continue
        keys = {k.lower() for operator in (st.get("Condition") or {}).values() for k in operator}
        if not keys & set(SOURCE_KEYS):
            findings.append(str(st.get("Sid") or f"Statement{n}"))
    return findings or NagRuleCompliance.COMPLIANT


def service_after_capacity_providers(s: Subject) -> Result:
    """AWS::ECS::Service with a capacity-provider strategy depends on its cluster's association."""
    if s.resource["Type"] != "AWS::ECS::Service" or not s.props.get("CapacityProviderStrategy"):
        return NagRuleCompliance.NOT_APPLICABLE
    cluster = s.props.get("Cluster")
    associations = [
        ref.logical_id
        for ref, props in s.assembly.each("AWS::ECS::ClusterCapacityProviderAssociations")
        if ref.template == s.me.template and props.get("Cluster") == cluster
    ]
    if associations and set(associations) <= s.depends_on:
        return NagRuleCompliance.COMPLIANT
    return NagRuleCompliance.NON_COMPLIANT


def _dead_letter_targets(s: Subject) -> Iterator[Any]:
    for _, queue in s.assembly.each("AWS::SQS::Queue"):
        yield (queue.get("RedrivePolicy") or {}).get("deadLetterTargetArn")
    for _, sub in s.assembly.each("AWS::SNS::Subscription"):
        yield (sub.get("RedrivePolicy") or {}).get("deadLetterTargetArn")
    for _, config in s.assembly.each("AWS::Lambda::EventInvokeConfig"):
        yield ((config.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    for _, fn in s.assembly.each("AWS::Lambda::Function"):
        yield (fn.get("DeadLetterConfig") or {}).get("TargetArn")


def dead_letter_queue_alarmed(s: Subject) -> Result:
    """AWS::SQS::Queue that is a dead-letter queue: some alarm watches its visible messages."""
    if s.resource["Type"] != "AWS::SQS::Queue":
        return NagRuleCompliance.NOT_APPLICABLE
    if not any(s.points_at_me(target, "Arn") for target in _dead_letter_targets(s)):
        return NagRuleCompliance.NOT_APPLICABLE
    for _, alarm in s.assembly.each("AWS::CloudWatch::Alarm"):
        metrics = [alarm] + [m.get("MetricStat", {}).get("Metric", {}) for m in alarm.get("Metrics", [])]
        for metric in metrics:
            watches_visible = (
                metric.get("Namespace") == "AWS/SQS"
                and metric.get("MetricName") == "ApproximateNumberOfMessagesVisible"
            )
            if watches_visible and any(
                d.get("Name") == "QueueName" and s.points_at_me(d.get("Value"), "QueueName")
                for d in metric.get("Dimensions", [])
            ):
                return NagRuleCompliance.COMPLIANT
    return NagRuleCompliance.NON_COMPLIANT


@dataclass(frozen=True)
class RuleSpec:
    suffix: str
    check: Callable[[Subject], Result]
    info: str
    explanation: str
    types: tuple[str, ...]  # the resource types it reads (each call into the rule crosses jsii: skip the rest)


RULES = (
    RuleSpec(
        "ApiAccessLogVariables",
        access_log_variables,
        "The stage's access-log format names context variables its API protocol does not have.",
        "API Gateway v2 refuses the stage (BadRequestException: 'The following context variables are not "
        "supported'). Lists: constructs_lib/data/apigw_access_log_variables.json, from 'Customize HTTP API "
        "access logs' and 'Configure logging for WebSocket APIs in API Gateway'.",
        ("AWS::ApiGatewayV2::Stage",),
    ),
    RuleSpec(
        "ApiGatewayAccountRole",
        api_gateway_account_role,
        "The WebSocket or REST stage logs, but does not depend on an AWS::ApiGateway::Account with a CloudWatch role.",
        "API Gateway refuses stage logging until the account and region have a cloudWatchRoleArn ('CloudWatch "
        "Logs role ARN must be set in account settings to enable logging'; API Gateway developer guide, 'Set up "
        "CloudWatch logging for REST APIs', Permissions). Create one (apiGatewayCloudWatchRole=true) or "
        "acknowledge with the account's existing role checked by make preflight.",
        ("AWS::ApiGatewayV2::Stage", "AWS::ApiGateway::Stage"),
    ),
    RuleSpec(
        "AlarmTopicPublishable",
        alarm_topic_publishable,
        "An alarm notifies this topic, but its topic policy or key policy does not let CloudWatch publish.",
        "A topic policy replaces SNS's default policy, so one holding only a TLS Deny locks CloudWatch out; an "
        "encrypted topic needs a customer managed key allowing cloudwatch.amazonaws.com kms:Decrypt and "
        "kms:GenerateDataKey* (SNS developer guide, 'Enable compatibility between event sources from AWS "
        "services and encrypted topics'; re:Post 'Why didn't I receive an SNS notification for my alarm').",
        ("AWS::SNS::Topic",),
    ),
    RuleSpec(
        "ServicePrincipalSourceCondition",
        service_principal_source_condition,
        "A key, topic or queue policy allows an AWS service without an aws:SourceAccount/aws:SourceArn condition.",
        "Without a source condition any account's use of the service can act on this resource (IAM user guide, "
        "'The confused deputy problem'; SNS developer guide asks for aws:SourceAccount and aws:SourceArn on keys "
        "used by AWS event sources).",
        tuple(_RESOURCE_POLICIES),
    ),
    RuleSpec(
        "ServiceAfterCapacityProviders",
        service_after_capacity_providers,
        "The ECS service uses a capacity-provider strategy but does not depend on its cluster's association.",
        "CloudFormation may create the service first, and ECS refuses it ('The specified capacity provider "
        "strategy cannot contain a capacity provider that is not associated with the cluster'); AWS's "
        "containers roadmap #631 advises DependsOn the AWS::ECS::ClusterCapacityProviderAssociations.",
        ("AWS::ECS::Service",),
    ),
    RuleSpec(
        "DeadLetterQueueAlarmed",
        dead_letter_queue_alarmed,
        "This queue receives dead letters but no alarm watches its ApproximateNumberOfMessagesVisible.",
        "A dead-letter queue holds what failed; unwatched it keeps it silently until its retention ends "
        "(SQS developer guide, 'Using dead-letter queues': configure an alarm for messages moved to a DLQ).",
        ("AWS::SQS::Queue",),
    ),
)


@jsii.implements(IApplyRule)
class _Apply:
    """One rule applied to one resource, in the shape cdk-nag's ``applyRule`` reads."""

    def __init__(self, node: CfnResource, spec: RuleSpec) -> None:
        self._node, self._spec = node, spec

    @property
    def node(self) -> CfnResource:
        return self._node

    @property
    def explanation(self) -> str:
        return self._spec.explanation

    @property
    def info(self) -> str:
        return self._spec.info

    @property
    def level(self) -> NagMessageLevel:
        return NagMessageLevel.ERROR

    @property
    def rule_suffix_override(self) -> str:
        return self._spec.suffix

    def rule(self, node: CfnResource) -> Result:
        stack = Stack.of(node)
        assembly = Assembly.of(node)
        me = Ref(stack.template_file, stack.resolve(node.logical_id))
        resource = assembly.resource(me)
        if not resource:
            return NagRuleCompliance.NOT_APPLICABLE
        return self._spec.check(Subject(assembly, me, resource))


class DeployRules(NagPack):  # type: ignore[misc]
    """The project's own cdk-nag pack: ``cdk.Validations.of(app).add_plugins(DeployRules(app))``."""

    def __init__(self, scope: Any = None) -> None:
        super().__init__(scope)
        self._pack_name = PACK

    @property
    def name(self) -> str:
        return PACK

    def _check_resource(self, node: CfnResource) -> None:
        rtype = node.cfn_resource_type
        for spec in RULES:
            if rtype not in spec.types:
                continue
            self._apply_rule(_Apply(node, spec))  # type: ignore[arg-type]  # jsii reads the properties
