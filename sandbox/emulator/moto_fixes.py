"""Small compatibility fixes applied to moto before its server starts.

Pinned to one moto version: the fixes replace or wrap moto internals, so any
other version is refused rather than silently mis-patched.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

SUPPORTED_MOTO = "5.2.5"


class UnsupportedMotoVersion(RuntimeError):
    pass


def check_version() -> None:
    import moto

    if moto.__version__ != SUPPORTED_MOTO:
        raise UnsupportedMotoVersion(
            f"the sandbox patches moto {SUPPORTED_MOTO} only; found {moto.__version__} (pin it in requirements-dev.txt)"
        )


def fix_kms_cloudformation_tags() -> None:
    """CloudFormation gives KMS keys Tags as Key/Value; moto 5.2.5's KMS tagger wants TagKey/TagValue."""
    from moto.kms.models import Key

    original = Key.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create(
        cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kw: Any
    ) -> Any:
        props = cloudformation_json.get("Properties", {})
        tags = props.get("Tags")
        if tags and "Key" in tags[0]:
            props = {**props, "Tags": [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in tags]}
            cloudformation_json = {**cloudformation_json, "Properties": props}
        return original(cls, resource_name, cloudformation_json, account_id, region_name, **kw)

    Key.create_from_cloudformation_json = classmethod(create)  # type: ignore[method-assign,assignment]


def fix_cloudformation_update_removing_unmodelled() -> None:
    """A stack update that removes a resource type moto has no model for (it created nothing for it, e.g.
    ``AWS::ApplicationAutoScaling::ScalingPolicy`` when ``compute`` goes from ecs to lambda) fails in moto
    5.2.5 with an AttributeError on None; there is nothing to delete, so the removal is a no-op."""
    from moto.cloudformation.parsing import ResourceMap

    original = ResourceMap._delete_resource

    def delete(self: Any, parsed_resource: Any, resource_json: dict[str, Any]) -> None:
        if parsed_resource is None or isinstance(parsed_resource, str):
            return
        original(self, parsed_resource, resource_json)

    ResourceMap._delete_resource = delete  # type: ignore[method-assign]


def fix_cloudformation_route_table_removal() -> None:
    """moto 5.2.5 keeps an ``AWS::EC2::RouteTable`` a stack update removes (it has no CloudFormation delete),
    so removing a VPC from a stack (``compute`` from ecs to lambda) fails with DependencyViolation. The
    route table is deleted with its subnet associations, as CloudFormation does."""
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.route_tables import RouteTable

    def delete_from_cloudformation_json(
        cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        backend = ec2_backends[account_id][region_name]
        table = backend.route_tables.get(resource_name)
        if table is None:
            return
        table._associations.clear()
        backend.delete_route_table(resource_name)

    RouteTable.delete_from_cloudformation_json = classmethod(delete_from_cloudformation_json)  # type: ignore[assignment]


def fix_cloudformation_lambda_reserved_concurrency_update() -> None:
    """moto 5.2.5 applies ``ReservedConcurrentExecutions`` when CloudFormation creates a function, not when
    a stack update changes it; the control plane reads it back to cap the function's environments."""
    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction.update_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def update(
        cls: Any,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        fn = original(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name)
        fn.reserved_concurrency = cloudformation_json["Properties"].get("ReservedConcurrentExecutions")
        return fn

    LambdaFunction.update_from_cloudformation_json = classmethod(update)  # type: ignore[method-assign,assignment]


def fix_lambda_account_settings() -> None:
    """moto 5.2.5 has no Lambda ``GetAccountSettings``; the preflight reads it. The account limit is moto's own
    ``MOTO_LAMBDA_CONCURRENCY_QUOTA`` (1000 when unset, Lambda's default), less what functions reserve."""
    import json
    import os

    from moto.awslambda import urls
    from moto.awslambda.models import lambda_backends
    from moto.awslambda.responses import LambdaResponse

    if hasattr(LambdaResponse, "get_account_settings"):
        return

    def get_account_settings(self: Any) -> tuple[int, dict[str, str], str]:
        backend = lambda_backends[self.current_account][self.region]
        limit = int(os.environ.get("MOTO_LAMBDA_CONCURRENCY_QUOTA", "1000"))
        functions = list(backend.list_functions())
        reserved = sum(int(fn.reserved_concurrency or 0) for fn in functions)
        body = {
            "AccountLimit": {"ConcurrentExecutions": limit, "UnreservedConcurrentExecutions": limit - reserved},
            "AccountUsage": {"FunctionCount": len(functions)},
        }
        return 200, {}, json.dumps(body)

    LambdaResponse.get_account_settings = get_account_settings  # type: ignore[attr-defined]
    urls.url_paths[r"{0}/(?P<api_version>[^/]+)/account-settings/?$"] = LambdaResponse.dispatch


class _PolledByControlPlane(dict):  # type: ignore[type-arg]
    """A queue's event source mappings, kept for moto's bookkeeping but never polled by moto itself."""

    def items(self) -> Any:
        return iter(())


def fix_sqs_event_source_mappings_polled_by_control_plane() -> None:
    """moto 5.2.5 answers every SendMessage to a queue with an enabled event source mapping by receiving a
    batch there and then trying to run the function in Docker. Here there is no Docker: each try fails, the
    batch returns to the queue with one more receive counted, and the oldest messages reach maxReceiveCount
    and the DLQ without any worker having seen them (a compute switch creates its mapping enabled, so every
    order sent before the control plane takes the mapping over did this). The control plane is the only
    poller of a mapping (sandbox/py), as Lambda's is on AWS."""
    from moto.sqs.models import Queue

    original = Queue.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.lambda_event_source_mappings = _PolledByControlPlane()

    Queue.__init__ = init  # type: ignore[method-assign]


def _pollers_and_maximum(scaling: Any, pollers: Any) -> bool:
    return bool((scaling or {}).get("MaximumConcurrency")) and bool(pollers)


def fix_lambda_event_source_mapping_scaling_modes() -> None:
    """moto 5.2.5 stores a mapping's ``ScalingConfig`` and ``ProvisionedPollerConfig`` side by side; Lambda refuses
    a maximum concurrency and provisioned mode on one mapping (Developer Guide, "Configuring scaling behavior for
    SQS event source mappings": "You cannot use the maximum concurrency setting and provisioned mode at the same
    time"), and an empty value clears either. An update that leaves one while adding the other, as CloudFormation
    does when a template drops a property, is refused here as there."""
    from moto.awslambda.models import LambdaBackend
    from moto.core.exceptions import JsonRESTError as RESTError

    create, update = LambdaBackend.create_event_source_mapping, LambdaBackend.update_event_source_mapping

    def refuse() -> RESTError:
        return RESTError(
            "InvalidParameterValueException",
            "You cannot use the maximum concurrency setting and provisioned mode at the same time.",
        )

    def create_mapping(self: Any, spec: dict[str, Any]) -> Any:
        if _pollers_and_maximum(spec.get("ScalingConfig"), spec.get("ProvisionedPollerConfig")):
            raise refuse()
        return create(self, spec)

    def update_mapping(self: Any, uuid: str, spec: dict[str, Any]) -> Any:
        esm = self.get_event_source_mapping(uuid)
        if esm is not None:
            scaling = spec.get("ScalingConfig", esm.scaling_config)
            pollers = spec.get("ProvisionedPollerConfig", esm.poller_config)
            if _pollers_and_maximum(scaling, pollers):
                raise refuse()
        out = update(self, uuid, spec)
        if out is not None:  # an empty value clears the setting
            out.scaling_config = out.scaling_config or None
            out.poller_config = out.poller_config or None
        return out

    LambdaBackend.create_event_source_mapping = create_mapping  # type: ignore[method-assign]
    LambdaBackend.update_event_source_mapping = update_mapping  # type: ignore[method-assign]


_DYNAMODB_LOCK = threading.Lock()


def fix_dynamodb_atomic_requests() -> None:
    """DynamoDB applies each request atomically: a conditional write checks and writes as one step, so of two
    concurrent ``attribute_not_exists`` puts exactly one succeeds. moto 5.2.5 checks, then writes, on
    whichever server thread serves the request, so both could succeed: two requests with one
    Idempotency-Key each created an order (the sale's money bar counted the checkout charged twice), and a
    read beside a write could fail inside moto ("dictionary changed size during iteration"). Serve one
    DynamoDB request at a time. Idempotent: applying it twice wraps once."""
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "_atomic", False):
        return
    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _DYNAMODB_LOCK:
            return original(self)

    call_action._atomic = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def fix_dynamodb_transaction_copies() -> None:
    """moto 5.2.5 backs up every table a TransactWriteItems touches with ``copy.deepcopy`` of the whole
    table, to roll back a cancelled transaction: each checkout (the order's put beside its stock) copied the
    orders table, so a sale slowed as it sold (quadratic). DynamoDB undoes only the items a transaction
    wrote. Here the items it names are saved before it runs (its requests are served one at a time, above)
    and put back if it is cancelled; the whole-table copy becomes a no-op. Idempotent."""
    import moto.dynamodb.models as models
    from moto.dynamodb.models.table import Table

    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, "_item_undo", False):
        return
    original = backend.transact_write_items

    class _NoTableCopy:
        """``copy`` for that module: a Table is not copied (the undo below restores its items)."""

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(x: Any, memo: Any = None) -> Any:
            return x if isinstance(x, Table) else copy.deepcopy(x, memo)

    models.copy = _NoTableCopy()  # type: ignore[assignment]

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved: list[tuple[str, dict[str, Any], Any]] = []
        for entry in transact_items:
            op = next(iter(entry.values())) if entry else {}
            name = op.get("TableName")
            if not name or name not in self.tables:
                continue
            table = self.tables[name]
            if "Key" in op:
                key = op["Key"]
            elif "Item" in op:
                key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                if table.range_key_attr is not None and table.range_key_attr in op["Item"]:
                    key[table.range_key_attr] = op["Item"][table.range_key_attr]
            else:
                continue
            try:
                current = self.get_item(name, key)
            except Exception:  # a malformed key: moto's own validation answers it below
                continue
            saved.append((name, key, copy.deepcopy(current.to_json()["Attributes"]) if current else None))
        try:
            original(self, transact_items)
        except Exception:
            for name, key, attributes in reversed(saved):
                if attributes is None:
                    self.delete_item(name, key)
                else:
                    self.put_item(name, attributes)
            raise

    transact_write_items._item_undo = True  # type: ignore[attr-defined]
    backend.transact_write_items = transact_write_items  # type: ignore[method-assign]


_WIRE_SCALARS = {"S": str, "N": str, "BOOL": bool, "NULL": bool}


def _wire_attribute(value: Any) -> bool:
    """Whether ``value`` is an AttributeValue already as the wire carries it (what the JSON serializer would
    produce from it unchanged): one member, S/N as str, BOOL/NULL as bool, SS/NS as lists of str, M and L
    of such values. Binary (B, BS) is left to moto: it is base64-encoded on the way out."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    scalar = _WIRE_SCALARS.get(kind)
    if scalar is not None:
        return isinstance(inner, scalar)
    if kind in ("SS", "NS"):
        return isinstance(inner, list) and all(isinstance(x, str) for x in inner)
    if kind == "M":
        return isinstance(inner, dict) and all(isinstance(k, str) and _wire_attribute(v) for k, v in inner.items())
    if kind == "L":
        return isinstance(inner, list) and all(_wire_attribute(v) for v in inner)
    return False


def fix_dynamodb_attribute_value_serialization() -> None:
    """moto 5.2.5 serializes every response member by walking its botocore shape: an AttributeValue is a
    structure of ten members, each looked up through the attribute picker and alias providers, recursively
    through every map and list. An order item with its log costs milliseconds per response, and the DynamoDB
    emulator serves one request at a time: a quarter of its time went there. An AttributeValue that is
    already in wire form (``_wire_attribute``) is emitted as it is, which is what the walk produces from it
    (tests/integration/test_cfn_fidelity.py compares both on real responses); anything else takes moto's
    path. Idempotent."""
    from moto.core.serialize import BaseJSONSerializer

    if getattr(BaseJSONSerializer._serialize_type_structure, "_wire_fast_path", False):
        return
    original = BaseJSONSerializer._serialize_type_structure

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and shape.name == "AttributeValue" and _wire_attribute(value):
            serialized[self.get_serialized_name(shape, key)] = value
            return
        original(self, serialized, value, shape, key)

    serialize_structure._wire_fast_path = True  # type: ignore[attr-defined]
    serialize_structure.moto_original = original  # type: ignore[attr-defined]  # what the fidelity test compares
    BaseJSONSerializer._serialize_type_structure = serialize_structure  # type: ignore[method-assign]


def fix_dynamodb_update_expression_reuse() -> None:
    """moto 5.2.5 tokenizes and parses every UpdateExpression anew, then each validator deep-copies the
    tree before it fills it in: a few milliseconds per UpdateItem, on the emulator that serves one request
    at a time. The pipeline sends the same handful of expressions all sale long. Here a parsed tree is kept
    per expression string (as a pickle: each use gets a fresh tree, as a new parse would) and the
    validator's copy of a tree is a pickle round trip, several times faster than ``copy.deepcopy``; a tree
    that does not pickle is copied as before, and a bad expression raises as it did (it is never kept).
    Idempotent."""
    import pickle

    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    if getattr(UpdateExpressionParser.make, "_reused", False):
        return
    parse = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]
    trees: dict[str, bytes] = {}

    def make(cls: Any, expression_str: str) -> Any:
        blob = trees.get(expression_str)
        if blob is not None:
            return pickle.loads(blob)
        tree = parse(cls, expression_str)
        if len(trees) < 1024:  # the pipeline's expressions are a few; a flood of distinct ones is not kept
            trees[expression_str] = pickle.dumps(tree)
        return tree

    def copy_tree(x: Any, memo: Any = None) -> Any:
        if isinstance(x, Node):
            try:
                return pickle.loads(pickle.dumps(x))
            except Exception:  # a node holding something pickle cannot take: copy it as moto does
                pass
        return copy.deepcopy(x, memo)

    make._reused = True  # type: ignore[attr-defined]
    make.moto_original = parse  # type: ignore[attr-defined]  # what the fidelity test compares
    UpdateExpressionParser.make = classmethod(make)  # type: ignore[assignment,method-assign]
    validators.deepcopy = copy_tree  # type: ignore[attr-defined,assignment]


def apply() -> None:
    check_version()
    fix_dynamodb_atomic_requests()
    fix_dynamodb_transaction_copies()
    fix_dynamodb_attribute_value_serialization()
    fix_dynamodb_update_expression_reuse()
    fix_kms_cloudformation_tags()
    fix_cloudformation_update_removing_unmodelled()
    fix_cloudformation_route_table_removal()
    fix_cloudformation_lambda_reserved_concurrency_update()
    fix_lambda_account_settings()
    fix_sqs_event_source_mappings_polled_by_control_plane()
    fix_lambda_event_source_mapping_scaling_modes()
    from sandbox.emulator import cfn_resources

    cfn_resources.apply()
