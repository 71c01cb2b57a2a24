"""What the deployed stacks say the workers run on, read from the deployment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from planner import aws
from planner.model import SQS_MAPPED
from sandbox.emulator.process import Scale
from sandbox.stack.deploy import Deployment
from stacks import outputs


def resources(template: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == rtype]


# ----------------------------------------------------------------------------- ECS
@dataclass
class ScalingPolicy:
    """The deployed scaling policy's numbers, read from the service template."""

    min_tasks: int
    max_tasks: int
    target: float
    scale_out_cooldown_s: float
    scale_in_cooldown_s: float
    wake_depth: int
    wake_steps: list[tuple[float, float | None, int]]  # (lower, upper) relative to wake_depth, tasks to add

    @classmethod
    def from_template(cls, template: dict[str, Any]) -> ScalingPolicy:
        [target] = resources(template, "AWS::ApplicationAutoScaling::ScalableTarget")
        policies = {p["PolicyType"]: p for p in resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy")}
        tt = policies["TargetTrackingScaling"]["TargetTrackingScalingPolicyConfiguration"]
        step = policies["StepScaling"]["StepScalingPolicyConfiguration"]
        assert step["AdjustmentType"] == "ChangeInCapacity", step
        [wake] = [
            a
            for a in resources(template, "AWS::CloudWatch::Alarm")
            if any("FILL(running, 0) == 0" in m.get("Expression", "") for m in a.get("Metrics", []))
        ]
        assert wake["ComparisonOperator"] == "GreaterThanOrEqualToThreshold", wake
        return cls(
            min_tasks=int(target["MinCapacity"]),
            max_tasks=int(target["MaxCapacity"]),
            target=float(tt["TargetValue"]),
            scale_out_cooldown_s=float(tt.get("ScaleOutCooldown", 0)),
            scale_in_cooldown_s=float(tt.get("ScaleInCooldown", 0)),
            wake_depth=int(wake["Threshold"]),
            wake_steps=[
                (
                    float(a.get("MetricIntervalLowerBound", float("-inf"))),
                    float(a["MetricIntervalUpperBound"]) if "MetricIntervalUpperBound" in a else None,
                    int(a["ScalingAdjustment"]),
                )
                for a in step["StepAdjustments"]
            ],
        )

    # The context key ops set for each deployed number (planner/config.py), for the control plane's log.
    KEYS = {
        "target": "backlogPerTaskTarget",
        "min_tasks": "minTasks",
        "max_tasks": "maxTasks",
        "scale_out_cooldown_s": "scaleOutCooldownSeconds",
        "scale_in_cooldown_s": "scaleInCooldownSeconds",
        "wake_depth": "wakeQueueDepth",
    }

    def changes(self, new: ScalingPolicy) -> list[str]:
        """What a deploy changed, named by context key: ``backlogPerTaskTarget 100 -> 20``."""
        return [
            f"{key} {getattr(self, field):g} -> {getattr(new, field):g}"
            for field, key in self.KEYS.items()
            if getattr(self, field) != getattr(new, field)
        ]

    def steps(self) -> list[aws.StepAdjustment]:
        return [aws.StepAdjustment(lo, up, n) for lo, up, n in self.wake_steps]

    def target_tracking(self, scale: Scale) -> aws.TargetTracking:
        """Application Auto Scaling's target tracking for this policy, with the sandbox's time scale."""
        return aws.TargetTracking(
            target=self.target,
            min_tasks=self.min_tasks,
            max_tasks=self.max_tasks,
            scale_out_cooldown_s=self.scale_out_cooldown_s / scale.k,
            scale_in_cooldown_s=self.scale_in_cooldown_s / scale.k,
        )


def task_definition(ecs: Any, deployment: Deployment) -> tuple[dict[str, str], list[str], float]:
    cluster = deployment.service(outputs.CLUSTER_NAME)
    service = deployment.service(outputs.WORKER_SERVICE_NAME)
    [svc] = ecs.describe_services(cluster=cluster, services=[service])["services"]
    td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
    [container] = td["containerDefinitions"]
    env = {e["name"]: e["value"] for e in container.get("environment", [])}
    return env, container["command"], float(container.get("stopTimeout", 30))


def mapping_pollers(mapping: dict[str, Any]) -> tuple[int, int] | None:
    """A deployed mapping's provisioned pollers (minimum, maximum), or None in standard mode. MaximumPollers
    defaults to 200 for SQS (CloudFormation template reference, ProvisionedPollerConfig)."""
    pollers = mapping.get("ProvisionedPollerConfig") or {}
    if not pollers.get("MinimumPollers"):
        return None
    return int(pollers["MinimumPollers"]), int(pollers.get("MaximumPollers", 200))


@dataclass(frozen=True)
class ManagedInstances:
    """The worker's Managed Instances numbers, read from the service template (moto's GetFunctionConfiguration
    returns no CapacityProviderConfig): requests per environment and the published version's environments."""

    concurrency: int
    min_envs: int
    max_envs: int

    @classmethod
    def from_template(cls, template: dict[str, Any]) -> ManagedInstances:
        [props] = [p for p in resources(template, "AWS::Lambda::Function") if "CapacityProviderConfig" in p]
        config = props["CapacityProviderConfig"]["LambdaManagedInstancesCapacityProviderConfig"]
        scaling = props["FunctionScalingConfig"]
        return cls(
            concurrency=int(config["PerExecutionEnvironmentMaxConcurrency"]),
            min_envs=int(scaling["MinExecutionEnvironments"]),
            max_envs=int(scaling["MaxExecutionEnvironments"]),
        )

    @property
    def most(self) -> int:
        return self.max_envs * self.concurrency

    def capacity(self, real_s: float) -> int:
        """Requests the environments run this long into the sale (``planner.aws``: doubling at most every 5 min)."""
        return aws.lambda_mi_environments(real_s, self.min_envs, self.max_envs) * self.concurrency


@dataclass(frozen=True)
class LambdaSpec:
    """What the deployed Lambda worker runs on, read once from the function, its mapping on the orders
    queue and (for the SNS trigger) its EventInvokeConfig. ``changes`` names what a redeploy changed by
    context key, as ``ScalingPolicy.changes`` does for the ECS policy."""

    function: dict[str, Any]  # GetFunctionConfiguration
    compute: str  # lambda-sqs | lambda-sqs-provisioned | lambda-sns | lambda-mi
    reserved: int | None
    mapping: dict[str, Any]  # the orders queue's event source mapping (the SNS trigger's is a drain)
    invoke_config: dict[str, Any] | None  # lambda-sns: retries, event age, the on-failure destination

    @classmethod
    def read(cls, lam: Any, deployment: Deployment) -> LambdaSpec:
        name = deployment.service(outputs.WORKER_FUNCTION_NAME)
        mappings = lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
        [mapping] = mappings  # Lambda refuses a second mapping of one function to one queue
        sns = deployment.compute == "lambda-sns"
        return cls(
            function=lam.get_function_configuration(FunctionName=name),
            compute=deployment.compute,
            reserved=lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions"),
            mapping=mapping,
            invoke_config=lam.get_function_event_invoke_config(FunctionName=name) if sns else None,
        )

    @property
    def name(self) -> str:
        return str(self.function["FunctionName"])

    @property
    def environment(self) -> dict[str, str]:
        return dict(self.function["Environment"]["Variables"])

    @property
    def mapped_concurrency(self) -> int:
        """The most batches the mapping runs at once: its maximum concurrency, or its pollers' invokes."""
        pollers = mapping_pollers(self.mapping)
        if pollers is not None:
            return aws.lambda_sqs_provisioned_ceiling(pollers[1])
        return int((self.mapping.get("ScalingConfig") or {}).get("MaximumConcurrency", 1000))

    def settings(self) -> dict[str, Any]:
        """The deployed numbers by context key; with sns the mapping only drains, so its numbers are not the
        variant's."""
        out: dict[str, Any] = {
            "reservedConcurrency": self.reserved,
            "lambdaTimeoutSeconds": self.function["Timeout"],
            "lambdaMemoryMb": self.function["MemorySize"],
            "lambdaTrigger": "sns" if self.compute == "lambda-sns" else "sqs",
        }
        if self.compute in SQS_MAPPED:
            pollers = self.mapping.get("ProvisionedPollerConfig") or {}
            out["batchSize"] = self.mapping["BatchSize"]
            out["maxConcurrency"] = (self.mapping.get("ScalingConfig") or {}).get("MaximumConcurrency")
            out["lambdaMinPollers"] = pollers.get("MinimumPollers")
            out["lambdaMaxPollers"] = pollers.get("MaximumPollers")
            out["maxBatchingWindowSeconds"] = self.mapping.get("MaximumBatchingWindowInSeconds", 0)
        return out

    def changes(self, new: LambdaSpec) -> list[str]:
        mine, theirs = self.settings(), new.settings()
        out = [f"{key} {mine.get(key)} -> {value}" for key, value in theirs.items() if mine.get(key) != value]
        if self.environment != new.environment:
            out.append("environment changed")
        return out
