"""CloudFormation resources moto 5.2.5 ignores, with the semantics AWS gives them.

moto's CloudFormation skips every type it has no model for, so a stack that on
AWS loses its only orders subscription, or delivers to a queue whose policy
refuses the topic, works locally. The models here make the emulator behave as
CloudFormation and SNS do for what the pipeline relies on:

- ``AWS::SNS::Subscription``: create is ``Subscribe`` with the template's
  attributes; delete is ``Unsubscribe`` of the ARN it got. SNS answers an
  identical ``Subscribe`` with the existing ARN, so a subscription that moves to
  a new logical id is created (the same ARN) and then deleted: none is left.
- ``AWS::SNS::TopicPolicy``, ``AWS::SQS::QueuePolicy``: stored on the topic or
  queue (readable with GetTopicAttributes / GetQueueAttributes), and reset on
  delete.
- ``AWS::Lambda::EventInvokeConfig``: stored on the function, readable with
  GetFunctionEventInvokeConfig; AWS's ranges enforced.
- ``AWS::Lambda::CapacityProvider`` (Lambda Managed Instances): stored with the ranges its resource schema
  gives, replaced when a create-only property changes; a function's ``CapacityProviderConfig`` is checked as
  Lambda checks it (an existing provider, Python 3.13+, 2 GiB+, the ranges) and cannot be added to or
  removed from an existing function. The sandbox runs no instances: these only keep a template honest.
- Stack updates create and update first and delete in a cleanup step after, as
  CloudFormation does (moto deletes first).
- SNS delivery honours resource policies: a queue receives only if its policy
  lets ``sns.amazonaws.com`` send from this topic, a function only if its
  permissions let SNS invoke it; otherwise the message goes to the
  subscription's dead-letter queue, or is dropped, as on AWS. A Lambda
  subscription's events are put on the function's async-invoke queue
  (``async_queue_name``), which the control plane runs (moto runs no code).

Only moto 5.2.5 is patched (``moto_fixes.check_version``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from moto.core.common_models import CloudFormationModel

from sandbox.emulator.iam_policy import policy_allows
from sandbox.emulator.queues import async_queue_name

log = logging.getLogger("sandbox.emulator")


# ----------------------------------------------------------------------------- models
def _sns_backend(account_id: str, region_name: str) -> Any:
    from moto.sns.models import sns_backends

    return sns_backends[account_id][region_name]


def _sqs_backend(account_id: str, region_name: str) -> Any:
    from moto.sqs.models import sqs_backends

    return sqs_backends[account_id][region_name]


def _lambda_backend(account_id: str, region_name: str) -> Any:
    from moto.awslambda.utils import get_backend

    return get_backend(account_id, region_name)


def _cfn_error(message: str) -> Exception:
    from moto.cloudformation.exceptions import ValidationError

    return ValidationError(message=message)


class SnsSubscription(CloudFormationModel):
    REPLACED_BY = ("TopicArn", "Protocol", "Endpoint")
    ATTRIBUTES = ("DeliveryPolicy", "FilterPolicyScope", "FilterPolicy", "RawMessageDelivery", "RedrivePolicy")

    def __init__(self, arn: str, props: dict[str, Any]) -> None:
        self.arn, self.props = arn, props

    @property
    def physical_resource_id(self) -> str:
        return self.arn

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SNS::Subscription"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return self.arn

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kw: Any
    ) -> SnsSubscription:
        props = cloudformation_json["Properties"]
        backend = _sns_backend(account_id, region_name)
        existing = backend._find_subscription(props["TopicArn"], props["Endpoint"], props["Protocol"])
        if existing is not None and _differs(existing.attributes, props):
            # Subscribe passes the attributes; SNS refuses an existing subscription with others.
            raise _cfn_error(
                "Invalid parameter: Attributes Reason: Subscription already exists with different attributes"
            )
        sub = backend.subscribe(props["TopicArn"], props["Endpoint"], props["Protocol"])
        made = cls(sub.arn, props)
        made._apply(backend, previous={})
        return made

    def _apply(self, backend: Any, previous: dict[str, Any]) -> None:
        for name in self.ATTRIBUTES:  # the scope before the filter policy it governs
            value, old = self.props.get(name), previous.get(name)
            if value == old and not (name == "FilterPolicy" and value and self._scope_changed(previous)):
                continue  # (moto rebuilds the filter's matcher only when FilterPolicy is set)
            if name == "RawMessageDelivery":
                backend.subscriptions[self.arn].attributes[name] = str(value).lower() == "true"
                continue
            if value is None:
                value = ""  # SetSubscriptionAttributes with an empty value clears it
            elif isinstance(value, dict):
                value = json.dumps(value)
            backend.set_subscription_attributes(self.arn, name, value)

    def _scope_changed(self, previous: dict[str, Any]) -> bool:
        return bool(self.props.get("FilterPolicyScope") != previous.get("FilterPolicyScope"))

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[override]
        cls,
        original_resource: SnsSubscription,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> SnsSubscription:
        props = cloudformation_json["Properties"]
        if any(props.get(p) != original_resource.props.get(p) for p in cls.REPLACED_BY):
            # Replacement: the new subscription first, the old one deleted after (cleanup).
            new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)
            if new.arn != original_resource.arn:
                original_resource.delete(account_id, region_name)
            return new
        updated = cls(original_resource.arn, props)
        updated._apply(_sns_backend(account_id, region_name), previous=original_resource.props)
        return updated

    def delete(self, account_id: str, region_name: str) -> None:
        _sns_backend(account_id, region_name).unsubscribe(self.arn)


class _PolicyResource:
    """A resource policy attached to several targets (topics or queues); the physical id is its name.
    Each concrete model also names CloudFormationModel as a base: moto finds direct subclasses only."""

    TARGETS = ""

    def __init__(self, name: str, targets: list[str], document: dict[str, Any]) -> None:
        self.name, self.targets, self.document = name, targets, document

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Id"

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return self.name

    @classmethod
    def _set(cls, target: str, document: dict[str, Any] | None, account_id: str, region_name: str) -> None:
        raise NotImplementedError

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kw: Any
    ) -> _PolicyResource:
        props = cloudformation_json["Properties"]
        document = props["PolicyDocument"]  # the schema allows an object or a JSON string
        made = cls(
            resource_name, list(props[cls.TARGETS]), json.loads(document) if isinstance(document, str) else document
        )
        for target in made.targets:
            cls._set(target, made.document, account_id, region_name)
        return made

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[override]
        cls,
        original_resource: _PolicyResource,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> _PolicyResource:
        new = cls.create_from_cloudformation_json(original_resource.name, cloudformation_json, account_id, region_name)
        for gone in set(original_resource.targets) - set(new.targets):
            cls._set(gone, None, account_id, region_name)
        return new

    def delete(self, account_id: str, region_name: str) -> None:
        for target in self.targets:
            try:
                self._set(target, None, account_id, region_name)
            except Exception:  # the topic or queue went first: nothing left to reset
                continue


class SnsTopicPolicy(_PolicyResource, CloudFormationModel):
    TARGETS = "Topics"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SNS::TopicPolicy"

    @classmethod
    def _set(cls, target: str, document: dict[str, Any] | None, account_id: str, region_name: str) -> None:
        topic = _sns_backend(account_id, region_name).get_topic(target)
        if document is None:
            topic._policy_json = topic._create_default_topic_policy(region_name, account_id, topic.name)
        else:
            topic._policy_json = document


class SqsQueuePolicy(_PolicyResource, CloudFormationModel):
    TARGETS = "Queues"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SQS::QueuePolicy"

    @classmethod
    def _set(cls, target: str, document: dict[str, Any] | None, account_id: str, region_name: str) -> None:
        queue = _sqs_backend(account_id, region_name).get_queue(target.rstrip("/").rsplit("/", 1)[-1])
        queue.policy = None if document is None else json.dumps(document)


class LambdaEventInvokeConfig(CloudFormationModel):
    def __init__(self, function_name: str, qualifier: str) -> None:
        self.function_name, self.qualifier = function_name, qualifier

    @property
    def physical_resource_id(self) -> str:
        return f"{self.function_name}:{self.qualifier}"

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::EventInvokeConfig"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kw: Any
    ) -> LambdaEventInvokeConfig:
        props = cloudformation_json["Properties"]
        name, qualifier = props["FunctionName"], props.get("Qualifier")
        retries, age = props.get("MaximumRetryAttempts"), props.get("MaximumEventAgeInSeconds")
        # The resource schema's ranges (AWS::Lambda::EventInvokeConfig); Qualifier is required.
        if qualifier is None:
            raise _cfn_error("AWS::Lambda::EventInvokeConfig: Qualifier is required")
        if qualifier != "$LATEST":  # moto keeps one configuration per function, not per version or alias
            raise _cfn_error(
                f"AWS::Lambda::EventInvokeConfig: Qualifier {qualifier!r}: the sandbox emulates $LATEST only"
            )
        if retries is not None and not 0 <= int(retries) <= 2:
            raise _cfn_error(f"AWS::Lambda::EventInvokeConfig: MaximumRetryAttempts {retries} not in 0..2")
        if age is not None and not 60 <= int(age) <= 21_600:
            raise _cfn_error(f"AWS::Lambda::EventInvokeConfig: MaximumEventAgeInSeconds {age} not in 60..21600")
        config = {
            k: props[k] for k in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig") if k in props
        }
        config = {k: int(v) if k != "DestinationConfig" else v for k, v in config.items()}
        backend = _lambda_backend(account_id, region_name)
        backend.get_function(name).event_invoke_config = []  # moto's put appends; AWS's replaces
        backend.put_function_event_invoke_config(name, config)
        return cls(name, qualifier)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[override]
        cls,
        original_resource: LambdaEventInvokeConfig,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> LambdaEventInvokeConfig:
        new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)
        if new.function_name != original_resource.function_name:
            _clean_up_later(lambda: original_resource.delete(account_id, region_name))
        return new

    def delete(self, account_id: str, region_name: str) -> None:
        try:
            _lambda_backend(account_id, region_name).get_function(self.function_name).event_invoke_config = []
        except Exception:  # the function was deleted first: its configuration went with it
            return


# ----------------------------------------------------------------------------- Lambda Managed Instances
_capacity_providers: dict[str, dict[str, Any]] = {}  # ARN -> properties


def _mi_error(message: str) -> Exception:
    return _cfn_error(f"AWS::Lambda::CapacityProvider: {message}")


class LambdaCapacityProvider(CloudFormationModel):
    """AWS::Lambda::CapacityProvider, as its resource schema allows it (CloudFormation Template Reference)."""

    CREATE_ONLY = ("CapacityProviderName", "VpcConfig", "PermissionsConfig", "InstanceRequirements", "KmsKeyArn")

    def __init__(self, arn: str, props: dict[str, Any]) -> None:
        self.arn, self.props = arn, props

    @property
    def physical_resource_id(self) -> str:
        return self.arn.rsplit(":", 1)[1]

    @staticmethod
    def cloudformation_name_type() -> str:
        return "CapacityProviderName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::CapacityProvider"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return self.arn

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kw: Any
    ) -> LambdaCapacityProvider:
        props = cloudformation_json["Properties"]
        vpc = props.get("VpcConfig") or {}
        if not 1 <= len(vpc.get("SubnetIds", [])) <= 16:
            raise _mi_error("VpcConfig.SubnetIds needs 1 to 16 subnets")
        if len(vpc.get("SecurityGroupIds", [])) > 5:
            raise _mi_error("VpcConfig.SecurityGroupIds takes at most 5 security groups")
        if not (props.get("PermissionsConfig") or {}).get("CapacityProviderOperatorRoleArn"):
            raise _mi_error("PermissionsConfig.CapacityProviderOperatorRoleArn is required")
        arch = (props.get("InstanceRequirements") or {}).get("Architectures", ["x86_64"])
        if len(arch) != 1 or arch[0] not in ("x86_64", "arm64"):
            raise _mi_error(f"InstanceRequirements.Architectures {arch}: exactly one of x86_64, arm64")
        vcpus = (props.get("CapacityProviderScalingConfig") or {}).get("MaxVCpuCount")
        if vcpus is not None and not 2 <= int(vcpus) <= 15_000:
            raise _mi_error(f"CapacityProviderScalingConfig.MaxVCpuCount {vcpus} not in 2..15000")
        name = props.get("CapacityProviderName") or resource_name
        arn = f"arn:aws:lambda:{region_name}:{account_id}:capacity-provider:{name}"
        _capacity_providers[arn] = props
        return cls(arn, props)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[override]
        cls,
        original_resource: LambdaCapacityProvider,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> LambdaCapacityProvider:
        props = cloudformation_json["Properties"]
        if all(props.get(k) == original_resource.props.get(k) for k in cls.CREATE_ONLY):
            original_resource.props = props  # the scaling configuration: updated in place
            _capacity_providers[original_resource.arn] = props
            return original_resource
        new = cls.create_from_cloudformation_json(
            f"{new_resource_name}-r", cloudformation_json, account_id, region_name
        )
        _clean_up_later(lambda: original_resource.delete(account_id, region_name))
        return new

    def delete(self, account_id: str, region_name: str) -> None:
        _capacity_providers.pop(self.arn, None)


def _check_capacity_provider_config(props: dict[str, Any]) -> None:
    """What Lambda checks of a function on a capacity provider (Lambda Developer Guide, Lambda Managed Instances:
    runtimes, best practices; API reference, LambdaManagedInstancesCapacityProviderConfig)."""
    config = (props.get("CapacityProviderConfig") or {}).get("LambdaManagedInstancesCapacityProviderConfig")
    if config is None:
        return
    where = "AWS::Lambda::Function CapacityProviderConfig"
    if config.get("CapacityProviderArn") not in _capacity_providers:
        raise _cfn_error(f"{where}: capacity provider {config.get('CapacityProviderArn')!r} does not exist")
    runtime = str(props.get("Runtime", ""))
    version = tuple(int(n) for n in runtime.removeprefix("python").split(".")) if runtime.startswith("python") else ()
    if runtime.startswith("python") and version < (3, 13):
        raise _cfn_error(f"{where}: runtime {runtime} is not supported (Python 3.13 or later)")
    if int(props.get("MemorySize", 128)) < 2048:
        raise _cfn_error(f"{where}: MemorySize {props.get('MemorySize', 128)} below the 2,048 MB minimum")
    ratio = config.get("ExecutionEnvironmentMemoryGiBPerVCpu")
    if ratio is not None and not 2.0 <= float(ratio) <= 8.0:
        raise _cfn_error(f"{where}: ExecutionEnvironmentMemoryGiBPerVCpu {ratio} not in 2.0..8.0")
    concurrency = config.get("PerExecutionEnvironmentMaxConcurrency")
    if concurrency is not None and not 1 <= int(concurrency) <= 1600:
        raise _cfn_error(f"{where}: PerExecutionEnvironmentMaxConcurrency {concurrency} not in 1..1600")


def _fix_capacity_provider_functions() -> None:
    """Check a function's capacity provider on create, and refuse one added or removed on update: Lambda does not
    move an existing function between on-demand and Managed Instances (SAM: "can't be added or removed after the
    function resource has been created"; whether CloudFormation would fail or replace is not documented, so the
    emulator takes the stricter reading and fails the update)."""
    from moto.awslambda.models import LambdaFunction

    create, update = LambdaFunction.create_from_cloudformation_json, LambdaFunction.update_from_cloudformation_json

    def created(cls: Any, resource_name: str, cloudformation_json: dict[str, Any], *a: Any, **kw: Any) -> Any:
        _check_capacity_provider_config(cloudformation_json["Properties"])
        fn = create.__func__(cls, resource_name, cloudformation_json, *a, **kw)  # type: ignore[attr-defined]
        fn.capacity_provider_config = cloudformation_json["Properties"].get("CapacityProviderConfig")
        return fn

    def updated(
        cls: Any,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> Any:
        props = cloudformation_json["Properties"]
        before = getattr(original_resource, "capacity_provider_config", None)
        if (before is None) != (props.get("CapacityProviderConfig") is None):
            raise _cfn_error(
                f"AWS::Lambda::Function {original_resource.function_name}: a capacity provider cannot be added to "
                "or removed from an existing function; deploy it as a new function"
            )
        _check_capacity_provider_config(props)
        fn = update.__func__(  # type: ignore[attr-defined]
            cls,
            original_resource=original_resource,
            new_resource_name=new_resource_name,
            cloudformation_json=cloudformation_json,
            account_id=account_id,
            region_name=region_name,
        )
        fn.capacity_provider_config = props.get("CapacityProviderConfig")
        return fn

    LambdaFunction.create_from_cloudformation_json = classmethod(created)  # type: ignore[method-assign,assignment]
    LambdaFunction.update_from_cloudformation_json = classmethod(updated)  # type: ignore[method-assign,assignment]


# ----------------------------------------------------------------------------- update order
_cleanup: list[Any] | None = None  # during a stack update: deletions CloudFormation makes in its cleanup step


def _clean_up_later(delete: Any) -> None:
    """Delete a replaced resource in the update's cleanup step (at once outside an update)."""
    if _cleanup is None:
        delete()
    else:
        _cleanup.append(delete)


def _differs(attributes: dict[str, Any], props: dict[str, Any]) -> bool:
    """Whether an existing subscription's attributes differ from a template's (the ones CloudFormation sets)."""
    for name in ("FilterPolicy", "RedrivePolicy", "DeliveryPolicy"):
        have, want = attributes.get(name) or None, props.get(name)
        if (json.loads(have) if isinstance(have, str) else have) != want:
            return True
    raw = str(attributes.get("RawMessageDelivery", False)).lower() == "true"
    return raw != (str(props.get("RawMessageDelivery", False)).lower() == "true")


def _fix_update_order() -> None:
    """CloudFormation creates and updates a stack's resources first and deletes the removed ones in a
    cleanup step at the end; moto 5.2.5 deletes first. The order matters whenever two logical ids name one
    physical resource (an identical subscription under a new id), so removals are deferred to the end."""
    from moto.cloudformation.parsing import ResourceMap

    update, delete_resource = ResourceMap.update, ResourceMap._delete_resource

    def deferring_delete(self: Any, parsed_resource: Any, resource_json: dict[str, Any]) -> None:
        deferred = getattr(self, "_sandbox_deferred", None)
        if deferred is None:
            delete_resource(self, parsed_resource, resource_json)
        else:
            deferred.append((parsed_resource, resource_json))

    def update_then_clean_up(self: Any, template: dict[str, Any], parameters: dict[str, Any] | None = None) -> None:
        global _cleanup
        self._sandbox_deferred, _cleanup = [], []
        try:
            update(self, template, parameters)
        finally:
            deferred, self._sandbox_deferred = self._sandbox_deferred, None
            replaced, _cleanup = _cleanup, None
        for delete in replaced:
            delete()
        last: Exception | None = None
        for _ in range(5):  # dependants first, as moto's own removal loop retries
            failed = []
            for parsed_resource, resource_json in deferred:
                try:
                    delete_resource(self, parsed_resource, resource_json)
                except Exception as exc:
                    last = exc
                    failed.append((parsed_resource, resource_json))
            deferred = failed
            if not deferred:
                return
        assert last is not None
        raise last

    ResourceMap.update = update_then_clean_up  # type: ignore[method-assign]
    ResourceMap._delete_resource = deferring_delete  # type: ignore[method-assign]


# ----------------------------------------------------------------------------- delivery
def _fix_delivery() -> None:
    """SNS -> SQS and SNS -> Lambda delivery as AWS does it: resource policies decide; what cannot be
    delivered goes to the subscription's dead-letter queue (or is lost); Lambda events are queued for the
    control plane's async invoker."""
    from moto.sns.models import Subscription

    publish = Subscription.publish

    def deliver(self: Any, message: str, message_id: str, **kwargs: Any) -> None:
        attributes = kwargs.get("message_attributes")
        if self._filter_policy_matcher is not None and not self._filter_policy_matcher.matches(attributes, message):
            return
        context = _delivery_context(self)
        if self.protocol == "sqs":
            if _queue_accepts(self.endpoint, context):
                publish(self, message, message_id, **kwargs)
            else:
                _undeliverable(self, message, message_id, "the queue's policy does not let the topic send")
        elif self.protocol == "lambda":
            reason = _invoke_async(self, message, message_id, attributes or {}, context)
            if reason:
                _undeliverable(self, message, message_id, reason)
        else:
            publish(self, message, message_id, **kwargs)

    Subscription.publish = deliver  # type: ignore[method-assign,assignment]


def _delivery_context(sub: Any) -> dict[str, str]:
    """The request context SNS's delivery presents to a resource policy (over TLS, from this topic)."""
    return {"aws:SourceArn": sub.topic.arn, "aws:SourceAccount": sub.account_id, "aws:SecureTransport": "true"}


def _queue_accepts(queue_arn: str, context: dict[str, str]) -> bool:
    _, _, _, region, account, name = queue_arn.split(":", 5)
    try:
        queue = _sqs_backend(account, region).get_queue(name)
    except Exception:
        return False
    policy = json.loads(queue.policy) if queue.policy else None
    return policy_allows(
        policy, service="sns.amazonaws.com", action="sqs:SendMessage", resource=queue_arn, context=context
    )


def _invoke_async(sub: Any, message: str, message_id: str, attributes: dict[str, Any], context: dict[str, str]) -> str:
    """Queue the event for the function's async invoker; a reason if SNS could not invoke it."""
    _, _, _, region, account, _, name, *_ = sub.endpoint.split(":")
    try:
        fn = _lambda_backend(account, region).get_function(name)
    except Exception:
        return "the function does not exist"
    statements = fn.policy.statements
    if not policy_allows(
        {"Statement": statements},
        service="sns.amazonaws.com",
        action="lambda:InvokeFunction",
        resource=fn.function_arn,
        context=context,
    ):
        return "the function's permissions do not let the topic invoke it"
    sqs = _sqs_backend(account, region)
    queue = async_queue_name(fn.function_name)
    if queue not in sqs.queues:
        sqs.create_queue(queue)
    record = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": sub.topic.arn,
        "Message": message,
        "MessageAttributes": {k: {"Type": v["Type"], "Value": v["Value"]} for k, v in attributes.items()},
        "EventSubscriptionArn": sub.arn,
    }
    sqs.send_message(queue, json.dumps(record))
    return ""


def _undeliverable(sub: Any, message: str, message_id: str, reason: str) -> None:
    """A client-side delivery error: no retries; the subscription's DLQ if it has one (and lets the topic
    send), else the message is lost, as SNS does."""
    redrive = sub.attributes.get("RedrivePolicy")
    target = json.loads(redrive)["deadLetterTargetArn"] if redrive else None
    if target and _queue_accepts(target, _delivery_context(sub)):
        _, _, _, region, account, name = target.split(":", 5)
        body = json.dumps(sub.get_post_data(message, message_id, None))
        _sqs_backend(account, region).send_message(name, body)
        log.warning("sns: %s -> %s: %s; sent to the subscription's DLQ", sub.topic.arn, sub.endpoint, reason)
    else:
        log.warning("sns: %s -> %s: %s; message lost (no usable subscription DLQ)", sub.topic.arn, sub.endpoint, reason)


_applied = False


def apply() -> None:
    global _applied
    if _applied:
        return
    _applied = True
    from moto.cloudformation import parsing

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
    _fix_update_order()
    _fix_delivery()
    _fix_capacity_provider_functions()
