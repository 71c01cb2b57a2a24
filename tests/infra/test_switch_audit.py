"""The switch audit: for each switch users make, what CloudFormation does on the update, and what it must not do.

For every pair the two synthesized templates are compared as CloudFormation will apply them (CDK's own
template diff, @aws-cdk/cloudformation-diff, for what is created, updated, replaced and destroyed). A switch
must leave the data stack untouched, must not move a resource whose identity is its properties (SNS answers an
identical Subscribe with the existing ARN, so the old resource's delete removes the new one; Lambda refuses a
second mapping of one function to one queue; a queue or topic policy's delete clears the policy), must leave
every queue a consumer, and must leave the orders queue read by a worker of the new variant.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIFF = Path(__file__).parent / "tools" / "template_diff.js"

SWITCHES = [
    ("ecs", "lambda-sqs"),
    ("lambda-sqs", "ecs"),
    ("lambda-sqs", "lambda-sns"),
    ("lambda-sns", "lambda-sqs"),
    ("ecs", "lambda-sns"),
    ("lambda-sns", "ecs"),
    ("ecs", "ecs-thresholds"),
    ("lambda-sqs", "lambda-thresholds"),
    ("lambda-sqs", "lambda-provisioned"),
    ("lambda-provisioned", "lambda-sqs"),
    ("lambda-provisioned", "ecs"),
    ("ecs", "lambda-provisioned"),
    ("lambda-provisioned", "lambda-sns"),
    ("lambda-sns", "lambda-provisioned"),
    ("lambda-sqs", "lambda-mi"),
    ("lambda-mi", "lambda-sqs"),
    ("ecs", "lambda-mi"),
    ("lambda-mi", "ecs"),
    ("lambda-sns", "lambda-mi"),
    ("lambda-mi", "lambda-sns"),
]
# CloudFormation updates an event source mapping in place with the properties the template names: one the new
# template drops stays on the mapping. Where that is a setting of the other scaling mode Lambda refuses the
# update, so the switch is two steps, and the preflight names the call that clears the setting first.
TWO_STEP = {
    ("lambda-sqs", "lambda-provisioned"): {"ScalingConfig"},
    ("lambda-provisioned", "lambda-sqs"): {"ProvisionedPollerConfig"},
    ("lambda-sns", "lambda-provisioned"): {"ScalingConfig"},  # the drain mapping's maximum concurrency
    ("lambda-provisioned", "lambda-sns"): {"ProvisionedPollerConfig"},
}
STATEFUL = {"AWS::SQS::Queue", "AWS::DynamoDB::Table", "AWS::SNS::Topic", "AWS::KMS::Key"}
WORKER_HANDLER = "orders.entrypoints.worker_lambda.handler"
ECS_WORKER = "orders.entrypoints.worker_ecs"


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


# A resource whose identity at the service is some of its properties, not its logical id.
IDENTITY = {
    "AWS::SNS::Subscription": lambda p: [(p["TopicArn"], p["Protocol"], p["Endpoint"])],
    "AWS::Lambda::EventSourceMapping": lambda p: [(p["FunctionName"], p.get("EventSourceArn"))],
    "AWS::Lambda::EventInvokeConfig": lambda p: [(p["FunctionName"], p["Qualifier"])],
    "AWS::SQS::QueuePolicy": lambda p: [(q,) for q in p["Queues"]],
    "AWS::SNS::TopicPolicy": lambda p: [(t,) for t in p["Topics"]],
    "AWS::ECS::ClusterCapacityProviderAssociations": lambda p: [(p["Cluster"],)],
    "AWS::ApiGateway::Account": lambda p: [("the region's API Gateway account",)],
}


def templates(variant, name: str) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """(data template, service template, service template path) of a variant, from the session's synth cache."""
    synth = variant(name)
    path = synth.outdir / f"{synth.service_stack.stack_name}.template.json"
    return synth.data_json, synth.service_json, path


def identities(template: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(type, identity) -> logical id, for every identity-by-properties resource."""
    out = {}
    for logical, resource in template["Resources"].items():
        key = IDENTITY.get(resource["Type"])
        for identity in key(resource["Properties"]) if key else []:
            out[(resource["Type"], _canon(identity))] = logical
    return out


def consumers(template: dict[str, Any]) -> dict[str, set[str]]:
    """Queue reference (canonical) -> what reads it: 'lambda:<handler>' or 'ecs:<command>'."""
    res = template["Resources"]
    out: dict[str, set[str]] = {}
    for resource in res.values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::EventSourceMapping" and "EventSourceArn" in props:
            fn = res[props["FunctionName"]["Ref"]]["Properties"]["Handler"]
            out.setdefault(_canon(props["EventSourceArn"]), set()).add(f"lambda:{fn}")
        if resource["Type"] == "AWS::ECS::Service":
            task = res[props["TaskDefinition"]["Ref"]]["Properties"]
            for container in task["ContainerDefinitions"]:
                env = {e["Name"]: e["Value"] for e in container.get("Environment", [])}
                if "ORDERS_QUEUE_URL" in env:
                    out.setdefault(_canon(env["ORDERS_QUEUE_URL"]), set()).add(f"ecs:{' '.join(container['Command'])}")
    return out


def orders_queue(data: dict[str, Any]) -> tuple[str, str]:
    """How the service stack names the orders queue: (its ARN, its URL), as imports of the data stack's exports."""
    [queue] = [
        k for k, r in data["Resources"].items() if r["Type"] == "AWS::SQS::Queue" and k.startswith("OrdersQueue")
    ]
    exports = {_canon(o["Value"]): o["Export"]["Name"] for o in data["Outputs"].values() if "Export" in o}
    arn = exports[_canon({"Fn::GetAtt": [queue, "Arn"]})]
    url = exports[_canon({"Ref": queue})]
    return _canon({"Fn::ImportValue": arn}), _canon({"Fn::ImportValue": url})


def queues_needing_a_consumer(service: dict[str, Any]) -> list[str]:
    """The service stack's own queues that are not dead-letter queues (those wait for a redrive)."""
    res = service["Resources"]
    dlqs = {
        _canon(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
        for q in res.values()
        if q["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in q.get("Properties", {})
    }
    return [
        _canon({"Fn::GetAtt": [logical, "Arn"]})
        for logical, r in res.items()
        if r["Type"] == "AWS::SQS::Queue" and _canon({"Fn::GetAtt": [logical, "Arn"]}) not in dlqs
    ]


def diff(old: Path, new: Path) -> dict[str, dict[str, str]]:
    proc = subprocess.run(
        ["node", str(DIFF), str(old), str(new)], capture_output=True, text=True, cwd=ROOT, timeout=120, check=True
    )
    return dict(json.loads(proc.stdout))


@pytest.mark.parametrize(("old", "new"), SWITCHES, ids=[f"{a}->{b}" for a, b in SWITCHES])
def test_switch_keeps_state_identity_and_consumers(variant, old, new):
    old_data, old_service, old_path = templates(variant, old)
    new_data, new_service, new_path = templates(variant, new)
    # The data stack (topic, orders queue and DLQ, tables) is not touched by any switch.
    assert old_data == new_data
    # Nothing stateful of the service stack (consumer queues, connections table, keys) is replaced or destroyed.
    changes = diff(old_path, new_path)
    lost = {
        k: c for k, c in changes.items() if c["type"] in STATEFUL and c["impact"] in ("WILL_REPLACE", "WILL_DESTROY")
    }
    assert lost == {}
    # No resource whose identity is its properties moves to another logical id.
    before, after = identities(old_service), identities(new_service)
    moved = {key: (before[key], after[key]) for key in before.keys() & after.keys() if before[key] != after[key]}
    assert moved == {}, f"created under a new id, then deleted under the old one: {moved}"
    # Every queue keeps a consumer, and the orders queue is read by the new variant's worker.
    readers = consumers(new_service)
    for queue in queues_needing_a_consumer(new_service):
        assert readers.get(queue), f"no consumer for {queue}"
    arn, url = orders_queue(new_data)
    workers = readers.get(arn, set()) | readers.get(url, set())
    assert workers & {f"lambda:{WORKER_HANDLER}", f"ecs:python -m {ECS_WORKER}"}, workers


class _DeployedAccount:
    """What the preflight reads of an account where the old variant runs: its worker and that mapping."""

    def __init__(self, mapping: dict[str, Any]) -> None:
        self.mapping = mapping

    def client(self, service: str) -> Any:
        from types import SimpleNamespace

        from stacks import outputs

        stack = {"Outputs": [{"OutputKey": outputs.WORKER_FUNCTION_NAME, "OutputValue": "worker"}]}
        return {
            "cloudformation": SimpleNamespace(describe_stacks=lambda **_: {"Stacks": [stack]}),
            "lambda": SimpleNamespace(list_event_source_mappings=lambda **_: {"EventSourceMappings": [self.mapping]}),
        }[service]


def config_of(name: str) -> Any:
    from app import cdk_json_context
    from planner.config import load_config
    from tests.infra.conftest import EXTRA_VARIANTS, VARIANTS

    return load_config({**cdk_json_context(), **(VARIANTS.get(name) or EXTRA_VARIANTS[name])})


def dropped_from_mappings(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    """Properties of an event source mapping (same logical id in both) that the new template no longer names."""
    out: set[str] = set()
    for logical, resource in old["Resources"].items():
        after = new["Resources"].get(logical)
        if resource["Type"] == "AWS::Lambda::EventSourceMapping" and after and after["Type"] == resource["Type"]:
            out |= set(resource["Properties"]) - set(after["Properties"])
    return out


@pytest.mark.parametrize(("old", "new"), SWITCHES, ids=[f"{a}->{b}" for a, b in SWITCHES])
def test_a_switch_drops_no_mapping_setting_that_the_update_would_leave_behind(variant, old, new):
    from ops import preflight

    _, old_service, _ = templates(variant, old)
    _, new_service, _ = templates(variant, new)
    left = dropped_from_mappings(old_service, new_service)
    assert left == TWO_STEP.get((old, new), set())
    if left:
        # The preflight, reading the old variant's deployed mapping, refuses the new config and names the call
        # that clears what the update would leave.
        [mapping] = [
            r["Properties"]
            for k, r in old_service["Resources"].items()
            if r["Type"] == "AWS::Lambda::EventSourceMapping" and k.startswith("LambdaWorkers")
        ]
        deployed = {"UUID": "u-1", **{k: mapping[k] for k in left}}
        check = preflight.check_poller_mode_switch(_DeployedAccount(deployed), config_of(new))
        assert check is not None and not check.ok
        assert {"ScalingConfig": "--scaling-config", "ProvisionedPollerConfig": "--provisioned-poller-config"}[
            next(iter(left))
        ] in check.detail


def test_the_audit_catches_the_subscription_that_moved_between_variants(variant):
    """The defect the audit exists for: the orders-queue subscription under each compute's own construct."""
    _, service, _ = templates(variant, "ecs")
    moved = json.loads(json.dumps(service).replace("WorkersInboxSubscription", "LambdaWorkersQueueSubscription"))
    before, after = identities(service), identities(moved)
    assert {key for key in before.keys() & after.keys() if before[key] != after[key]}


def test_the_audit_catches_a_stranded_queue(variant):
    """lambdaTrigger=sns without the drain mapping would leave the orders queue without a reader."""
    data, service, _ = templates(variant, "lambda-sns")
    stripped = {
        **service,
        "Resources": {
            k: v
            for k, v in service["Resources"].items()
            if not (v["Type"] == "AWS::Lambda::EventSourceMapping" and k.startswith("LambdaWorkers"))
        },
    }
    arn, url = orders_queue(data)
    readers = consumers(stripped)
    assert not readers.get(arn) and not readers.get(url)
