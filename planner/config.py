"""Deployment configuration: read once from CDK context into a frozen, validated object.

Pure Python, no CDK: ``app.py`` reads it for synth, and the planner, the sandbox and the
preflight read it the same way (``resolve``), so a value means one thing everywhere.

Defaults live in ``cdk.json`` (one place); ``-c key=value`` overrides them.
Every problem is reported as one line naming the key, the value and what is
allowed, so a bad value stops synth before any construct is built.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from planner.aws import LAMBDA_SQS_INVOKES_PER_POLLER as INVOKES_PER_POLLER

ROOT = Path(__file__).resolve().parents[1]

# The most concurrent invocations the consumers every variant deploys may run (their event source mappings'
# maxConcurrency): the tracking pusher and notifications. Whether any of it is *reserved* is
# ``consumersReservedConcurrency``; what an account can reserve is the preflight's question (ops/preflight.py),
# not synth's: quotas differ per account and new accounts start far below the 1,000 default.
TRACKING_PUSH_CONCURRENCY = 10
NOTIFICATIONS_CONCURRENCY = 2


class ConfigError(ValueError):
    """A context value is missing, malformed or inconsistent with another."""


def _fail(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"context key '{key}' = {value!r}: expected {allowed}")


_DIGITS = re.compile(r"-?[0-9]+", re.ASCII)


def _int(lo: int, hi: int) -> Callable[[str, Any], int]:
    def parse(key: str, raw: Any) -> int:
        allowed = f"an integer from {lo} to {hi}"
        if isinstance(raw, bool):
            raise _fail(key, raw, allowed)
        value: int | None
        if isinstance(raw, str):  # plain ASCII digits only: no spaces, underscores or other scripts' digits
            value = int(raw) if _DIGITS.fullmatch(raw) else None
        elif isinstance(raw, int):
            value = raw
        elif isinstance(raw, float) and raw.is_integer():
            value = int(raw)
        else:
            value = None
        if value is None or not lo <= value <= hi:
            raise _fail(key, raw, allowed)
        return value

    return parse


def _float(lo: float, hi: float) -> Callable[[str, Any], float]:
    def parse(key: str, raw: Any) -> float:
        allowed = f"a number from {lo} to {hi}"
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise _fail(key, raw, allowed) from None
        if isinstance(raw, bool) or not math.isfinite(value) or not lo <= value <= hi:
            raise _fail(key, raw, allowed)
        return value

    return parse


def _bool(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise _fail(key, raw, "true or false")


def _enum(*choices: str) -> Callable[[str, Any], str]:
    def parse(key: str, raw: Any) -> str:
        if raw not in choices:
            raise _fail(key, raw, "one of " + ", ".join(choices))
        return str(raw)

    return parse


def _choice(*choices: int) -> Callable[[str, Any], int]:
    def parse(key: str, raw: Any) -> int:
        value = _int(min(choices), max(choices))(key, raw)
        if value not in choices:
            raise _fail(key, raw, "one of " + ", ".join(map(str, choices)))
        return value

    return parse


def _pattern(regex: str, allowed: str) -> Callable[[str, Any], str]:
    compiled = re.compile(regex)

    def parse(key: str, raw: Any) -> str:
        if not isinstance(raw, str) or not compiled.fullmatch(raw):
            raise _fail(key, raw, allowed)
        return raw

    return parse


LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


def _retention(key: str, raw: Any) -> int:
    value = _int(1, 3653)(key, raw)
    if value not in LOG_RETENTION_DAYS:
        raise _fail(key, raw, "a CloudWatch Logs retention in days (" + ", ".join(map(str, LOG_RETENTION_DAYS)) + ")")
    return value


_LAYER_ARN = _pattern(
    r"|arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:layer:[A-Za-z0-9_-]+:\d+", "a Lambda layer version ARN or empty"
)
_PARSERS: dict[str, Callable[[str, Any], Any]] = {}


def _max_concurrency(key: str, raw: Any) -> int:
    value = _int(0, 1000)(key, raw)
    if value == 1:
        raise _fail(key, raw, "0 (no maximum: lambdaPollerMode=provisioned) or an integer from 2 to 1000")
    return value


def key(name: str, parse: Callable[[str, Any], Any]) -> Any:
    """A context key, declared once: its name in cdk.json and ``-c`` (the field's alias) and the parser that
    turns its raw value (a string from ``-c``, a JSON value from cdk.json) into the field's, or fails in one
    line naming the key, the value and what is allowed."""
    _PARSERS[name] = parse
    return Field(alias=name)


class AppConfig(BaseModel):
    """The deployment's configuration, validated as a whole: each field's own range, then the rules that
    tie fields together (``_consistent``). Frozen: read once in ``app.py`` and passed down."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stack_prefix: str = key(
        "stackPrefix", _pattern(r"[A-Z][A-Za-z0-9]{0,30}", "a CamelCase name of 1-31 letters/digits")
    )
    compute: str = key("compute", _enum("lambda", "ecs", "lambda-mi"))
    lambda_trigger: str = key("lambdaTrigger", _enum("sqs", "sns"))
    retain_data: bool = key("retainData", _bool)
    api_auth: str = key("apiAuth", _enum("iam", "jwt", "none"))
    jwt_issuer: str = key(
        "jwtIssuer",
        _pattern(
            r"|https://[^\s]+|http://(127\.0\.0\.1|localhost)(:\d+)?(/[^\s]*)?",
            "empty (the stack creates a Cognito user pool), an https:// issuer URL, or a loopback one (the sandbox)",
        ),
    )
    jwt_audience: str = key("jwtAudience", _pattern(r"|[^\s,]+(,[^\s,]+)*", "empty, or audiences separated by commas"))
    api_throttle_rate: int = key("apiThrottleRateLimit", _int(1, 10000))
    api_throttle_burst: int = key("apiThrottleBurstLimit", _int(1, 5000))
    api_reserved_concurrency: int = key("apiReservedConcurrency", _int(0, 1000))
    consumers_reserved_concurrency: int = key("consumersReservedConcurrency", _int(0, 1000))
    api_gateway_cloudwatch_role: bool = key("apiGatewayCloudWatchRole", _bool)
    backpressure_max_queue_depth: int = key("backpressureMaxQueueDepth", _int(0, 10_000_000))
    payment_slots: int = key("paymentSlots", _int(1, 1000))
    payment_latency_ms: int = key("paymentLatencyMs", _int(0, 60_000))
    payment_failure_rate: float = key("paymentFailureRate", _float(0.0, 1.0))
    payment_lost_response_share: float = key("paymentLostResponseShare", _float(0.0, 1.0))
    payment_slow_share: float = key("paymentSlowShare", _float(0.0, 1.0))
    require_idempotency_key: bool = key("requireIdempotencyKey", _bool)
    idempotency_key_window_hours: int = key("idempotencyKeyWindowHours", _int(1, 720))
    reconcile_after_s: int = key("reconcileAfterSeconds", _int(60, 86_400))
    stock_shards: int = key("stockShards", _int(1, 100))
    catalog_cache_s: int = key("catalogCacheSeconds", _int(1, 300))  # >= 1: the public listing is a Scan
    visibility_timeout_s: int = key("queueVisibilityTimeoutSeconds", _int(1, 43_200))
    max_receive_count: int = key("maxReceiveCount", _int(1, 1000))
    queue_retention_days: int = key("queueRetentionDays", _int(1, 14))
    idempotency_ttl_s: int = key("idempotencyTtlSeconds", _int(60, 2_592_000))
    log_retention_days: int = key("logRetentionDays", _retention)
    alarm_oldest_age_s: int = key("alarmOldestMessageAgeSeconds", _int(60, 1_209_600))
    alarm_api_latency_p99_ms: int = key("alarmApiLatencyP99Ms", _int(50, 30_000))
    alarm_email: str = key("alarmEmail", _pattern(r"|[^@\s]+@[^@\s]+\.[^@\s]+", "an e-mail address or empty"))
    lambda_memory_mb: int = key("lambdaMemoryMb", _int(128, 10_240))
    lambda_timeout_s: int = key("lambdaTimeoutSeconds", _int(1, 900))
    reserved_concurrency: int = key("reservedConcurrency", _int(0, 1000))
    # 0: no maximum concurrency on the mapping (required with lambdaPollerMode=provisioned, which AWS refuses
    # together with one); otherwise 2-1000 (ScalingConfig.MaximumConcurrency).
    max_concurrency: int = key("maxConcurrency", _max_concurrency)
    poller_mode: str = key("lambdaPollerMode", _enum("standard", "provisioned"))
    # ProvisionedPollerConfig for SQS: minimum 2-200, maximum 2-2,000 (CloudFormation and aws-cdk-lib refuse
    # more; the newer Lambda API reference allows 10,000). Only read with lambdaPollerMode=provisioned.
    min_pollers: int = key("lambdaMinPollers", _int(2, 200))
    max_pollers: int = key("lambdaMaxPollers", _int(2, 2000))
    # compute=lambda-mi (Lambda Managed Instances): the worker's execution environments on a capacity provider.
    # PerExecutionEnvironmentMaxConcurrency (1-1,600; Python runs one process per concurrent request),
    # ExecutionEnvironmentMemoryGiBPerVCpu (2, 4 or 8), the function's memory (2 GiB at least) and the
    # published version's execution environments (Lambda keeps 3 across AZs: the floor).
    mi_concurrency: int = key("lmiPerEnvironmentConcurrency", _int(1, 1600))
    mi_memory_per_vcpu: int = key("lmiMemoryGibPerVcpu", _choice(2, 4, 8))
    mi_memory_mb: int = key("lmiMemoryMb", _int(2048, 32_768))
    mi_min_envs: int = key("lmiMinEnvironments", _int(3, 1000))
    mi_max_envs: int = key("lmiMaxEnvironments", _int(3, 1000))
    batch_size: int = key("batchSize", _int(1, 10))
    batch_window_s: int = key("maxBatchingWindowSeconds", _int(0, 300))
    sns_retry_attempts: int = key("snsRetryAttempts", _int(0, 2))
    max_event_age_s: int = key("maxEventAgeSeconds", _int(60, 21_600))
    powertools_layer_arn: str = key("powertoolsLayerArn", _LAYER_ARN)
    powertools_layer_version: int = key("powertoolsLayerVersion", _int(1, 10_000))
    min_tasks: int = key("minTasks", _int(0, 1000))
    max_tasks: int = key("maxTasks", _int(1, 1000))
    worker_concurrency: int = key("workerConcurrency", _int(1, 500))
    backlog_per_task_target: int = key("backlogPerTaskTarget", _int(1, 100_000))
    wake_queue_depth: int = key("wakeQueueDepth", _int(1, 100_000))
    scale_out_cooldown_s: int = key("scaleOutCooldownSeconds", _int(0, 3600))
    scale_in_cooldown_s: int = key("scaleInCooldownSeconds", _int(0, 3600))
    task_cpu: str = key("taskCpu", _enum("256", "512", "1024", "2048", "4096"))
    task_memory_mb: int = key("taskMemoryMb", _int(512, 30_720))
    fargate_capacity: str = key("fargateCapacity", _enum("spot", "ondemand"))
    fargate_on_demand_base: int = key("fargateOnDemandBase", _int(0, 1000))
    container_image: str = key(
        "containerImage",
        _pattern(
            r"|[a-z0-9.-]+(:\d+)?/[A-Za-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[a-f0-9]{64})", "an image URI or empty"
        ),
    )
    task_stop_timeout_s: int = key("taskStopTimeoutSeconds", _int(10, 120))
    chaos: bool = key("chaos", _bool)
    fis_lambda_extension_arn: str = key("fisLambdaExtensionArn", _LAYER_ARN)

    @field_validator("*", mode="before")
    @classmethod
    def _parse(cls, raw: Any, info: ValidationInfo) -> Any:
        alias = cls.model_fields[str(info.field_name)].alias
        assert alias is not None
        return _PARSERS[alias](alias, raw)

    @model_validator(mode="after")
    def _consistent(self) -> AppConfig:
        for rule in (
            self._reserves,
            self._visibility,
            self._lambda_batch,
            self._pollers,
            self._managed_instances,
            self._ecs_task,
            self._lifetimes,
            self._variant_keys,
            self._auth,
        ):
            rule()
        return self

    def _auth(self) -> None:
        """An issuer of one's own comes with its audience; both only mean something with apiAuth=jwt."""
        if (self.jwt_issuer or self.jwt_audience) and self.api_auth != "jwt":
            raise _fail("apiAuth", self.api_auth, "jwt when jwtIssuer or jwtAudience is set")
        if self.jwt_issuer and not self.jwt_audience:
            raise _fail("jwtAudience", "", "the token audience(s) jwtIssuer issues for this API (required with it)")

    @property
    def customer_pool(self) -> bool:
        """apiAuth=jwt without an issuer of one's own: the data stack creates a Cognito user pool."""
        return self.api_auth == "jwt" and not self.jwt_issuer

    @property
    def ecs_prefetch(self) -> int:
        """Messages an ECS worker may hold beyond its consumers (mirrors the runtime's default)."""
        return min(10, self.worker_concurrency)

    @property
    def ecs_worst_case_processing_s(self) -> int:
        """Longest a message can wait in one task: every held message queued on the payment slots."""
        held = self.worker_concurrency + self.ecs_prefetch
        return math.ceil(held / self.payment_slots) * math.ceil(self.payment_latency_ms / 1000)

    @property
    def reserved_by_function(self) -> dict[str, int]:
        """Context key -> concurrency this deployment reserves with it (0 = unreserved), for the preflight."""
        reserves = {"apiReservedConcurrency": self.api_reserved_concurrency}
        if self.compute == "lambda":
            reserves["reservedConcurrency"] = self.reserved_concurrency
        # Route function, tracking pusher, notifications.
        reserves["consumersReservedConcurrency"] = 3 * self.consumers_reserved_concurrency
        return reserves

    def _reserves(self) -> None:
        # 0 = unreserved: the mapping's maxConcurrency is then the only cap, and nothing is guaranteed.
        # (lambda-mi reserves nothing: its environments cap the mapping instead, ``_managed_instances``.)
        lmi = self.compute == "lambda-mi"
        if self.reserved_concurrency and self.max_concurrency > self.reserved_concurrency and not lmi:
            raise _fail(
                "maxConcurrency",
                self.max_concurrency,
                f"at most reservedConcurrency ({self.reserved_concurrency}), or reservedConcurrency=0 (unreserved)",
            )
        if self.consumers_reserved_concurrency == 1:
            raise _fail(
                "consumersReservedConcurrency",
                1,
                "0 (unreserved) or at least 2 (an SQS event source needs a maximum concurrency of 2 or more)",
            )

    def _visibility(self) -> None:
        """A message stays hidden longer than any worker can hold it."""
        if self.visibility_timeout_s < 6 * self.lambda_timeout_s:
            raise _fail(
                "queueVisibilityTimeoutSeconds",
                self.visibility_timeout_s,
                f">= 6 x lambdaTimeoutSeconds ({6 * self.lambda_timeout_s})",
            )
        if self.visibility_timeout_s < self.ecs_worst_case_processing_s:
            raise _fail(
                "queueVisibilityTimeoutSeconds",
                self.visibility_timeout_s,
                f">= the worst-case ECS processing time ({self.ecs_worst_case_processing_s} s for "
                f"workerConcurrency={self.worker_concurrency}, paymentSlots={self.payment_slots}, "
                f"paymentLatencyMs={self.payment_latency_ms})",
            )

    @property
    def variant(self) -> str:
        """What runs the workers, as the planner, the sandbox and the comparison name it."""
        if self.compute in ("ecs", "lambda-mi"):
            return self.compute
        if self.lambda_trigger == "sqs" and self.poller_mode == "provisioned":
            return "lambda-sqs-provisioned"
        return f"lambda-{self.lambda_trigger}"

    def _pollers(self) -> None:
        """Provisioned pollers replace the mapping's maximum concurrency (AWS refuses both on one mapping); the
        most invokes they can drive stay within the function's reserved concurrency, so the mapping never
        throttles the function (a throttled batch goes back to the queue, one receive nearer the DLQ)."""
        if self.min_pollers > self.max_pollers:
            raise _fail("lambdaMinPollers", self.min_pollers, f"at most lambdaMaxPollers ({self.max_pollers})")
        if self.poller_mode == "standard":
            if self.compute == "lambda" and self.lambda_trigger == "sqs" and self.max_concurrency == 0:
                raise _fail("maxConcurrency", 0, "2-1000 with lambdaPollerMode=standard (0 is for provisioned pollers)")
            return
        if self.compute != "lambda" or self.lambda_trigger != "sqs":
            raise _fail(
                "lambdaPollerMode",
                "provisioned",
                "standard unless compute=lambda and lambdaTrigger=sqs (it sets "
                "the pollers of the worker's SQS event source mapping)",
            )
        if self.max_concurrency:
            raise _fail(
                "maxConcurrency",
                self.max_concurrency,
                "0 with lambdaPollerMode=provisioned (AWS refuses maximum concurrency and provisioned mode on one "
                "mapping; lambdaMaxPollers caps it instead)",
            )
        most = self.max_pollers * INVOKES_PER_POLLER
        if self.reserved_concurrency and most > self.reserved_concurrency:
            raise _fail(
                "lambdaMaxPollers",
                self.max_pollers,
                f"at most reservedConcurrency / {INVOKES_PER_POLLER} "
                f"({self.reserved_concurrency // INVOKES_PER_POLLER}): {self.max_pollers} pollers drive up to "
                f"{most} invokes, and a throttled batch returns to the queue",
            )

    @property
    def mi_vcpus_per_env(self) -> int:
        """vCPUs of one Managed Instances execution environment: its memory over the memory per vCPU."""
        return self.mi_memory_mb // (1024 * self.mi_memory_per_vcpu)

    def _managed_instances(self) -> None:
        """A Managed Instances environment is whole vCPUs of ``lmiMemoryGibPerVcpu`` GiB each; the mapping's
        maximum concurrency fits what the environments run (more would only wait for a free slot)."""
        if self.mi_min_envs > self.mi_max_envs:
            raise _fail("lmiMinEnvironments", self.mi_min_envs, f"at most lmiMaxEnvironments ({self.mi_max_envs})")
        if self.compute != "lambda-mi":
            return
        step = 1024 * self.mi_memory_per_vcpu
        if self.mi_memory_mb % step:
            raise _fail(
                "lmiMemoryMb",
                self.mi_memory_mb,
                f"a multiple of {step} MiB (whole vCPUs at lmiMemoryGibPerVcpu={self.mi_memory_per_vcpu})",
            )
        if self.lambda_trigger != "sqs":
            raise _fail("lambdaTrigger", self.lambda_trigger, "sqs with compute=lambda-mi (it reads the orders queue)")
        if self.poller_mode != "standard":
            raise _fail("lambdaPollerMode", self.poller_mode, "standard with compute=lambda-mi")
        most = self.mi_max_envs * self.mi_concurrency
        if self.max_concurrency > most:
            raise _fail(
                "maxConcurrency",
                self.max_concurrency,
                f"at most lmiMaxEnvironments x lmiPerEnvironmentConcurrency ({most}) with compute=lambda-mi",
            )
        if self.max_concurrency == 0:
            raise _fail("maxConcurrency", 0, "2-1000 with compute=lambda-mi (the mapping's maximum concurrency)")
        if self.chaos:
            raise _fail("chaos", True, "false with compute=lambda-mi (no AWS FIS Lambda action is documented for it)")

    def _lambda_batch(self) -> None:
        # The worker pays a batch's records concurrently, up to paymentSlots at once.
        waves = math.ceil(self.batch_size / self.payment_slots)
        batch_ms = waves * self.payment_latency_ms
        if self.lambda_timeout_s * 1000 < batch_ms:
            raise _fail(
                "lambdaTimeoutSeconds",
                self.lambda_timeout_s,
                f"room for a whole batch paid in waves of paymentSlots "
                f"(ceil(batchSize / paymentSlots) x paymentLatencyMs = {batch_ms} ms)",
            )

    def _ecs_task(self) -> None:
        if self.fargate_on_demand_base > self.max_tasks:
            raise _fail("fargateOnDemandBase", self.fargate_on_demand_base, f"at most maxTasks ({self.max_tasks})")
        one_payment_s = math.ceil(self.payment_latency_ms / 1000) + 5
        if self.task_stop_timeout_s < one_payment_s:
            raise ConfigError(
                f"context key 'taskStopTimeoutSeconds' = {self.task_stop_timeout_s}: expected at least "
                f"{one_payment_s} s for paymentLatencyMs={self.payment_latency_ms}: a stopping task must finish "
                "the payment it is making"
            )
        if self.min_tasks > self.max_tasks:
            raise _fail("minTasks", self.min_tasks, f"at most maxTasks ({self.max_tasks})")
        cpu_memory = {
            "256": (512, 2048),
            "512": (1024, 4096),
            "1024": (2048, 8192),
            "2048": (4096, 16384),
            "4096": (8192, 30720),
        }
        lo, hi = cpu_memory[self.task_cpu]
        if not lo <= self.task_memory_mb <= hi:
            raise _fail("taskMemoryMb", self.task_memory_mb, f"{lo}-{hi} MiB for taskCpu={self.task_cpu}")

    def _lifetimes(self) -> None:
        """What must outlive what: the payment record the redelivery, the queue the alarm."""
        if self.idempotency_ttl_s < self.visibility_timeout_s:
            raise ConfigError(
                f"context key 'idempotencyTtlSeconds' = {self.idempotency_ttl_s}: expected at least "
                f"queueVisibilityTimeoutSeconds ({self.visibility_timeout_s}): a payment's record must outlive "
                "the redelivery it guards against"
            )
        if self.alarm_oldest_age_s >= self.queue_retention_days * 86400:
            raise ConfigError(
                f"context key 'alarmOldestMessageAgeSeconds' = {self.alarm_oldest_age_s}: expected less than "
                f"queueRetentionDays ({self.queue_retention_days} d = {self.queue_retention_days * 86400} s): "
                "orders would expire before the alarm could fire"
            )

    def _variant_keys(self) -> None:
        if self.compute == "ecs" and self.lambda_trigger != "sqs":
            raise ConfigError(
                f"context key 'lambdaTrigger' = {self.lambda_trigger!r}: has no effect with compute='ecs' "
                "(ECS workers always read the queue); drop it or use compute=lambda"
            )
        if self.chaos and self.compute == "lambda" and not self.fis_lambda_extension_arn:
            raise ConfigError(
                "context key 'fisLambdaExtensionArn' = '': expected the AWS FIS Lambda extension layer ARN for your "
                "region when chaos=true with compute=lambda (FIS user guide: versions of the FIS extension for Lambda)"
            )


# The context keys, in declaration order (the order errors are reported in).
SPEC: tuple[str, ...] = tuple(str(f.alias) for f in AppConfig.model_fields.values())

# Context the CDK itself owns: feature flags (``@aws-cdk/...``) and the CLI's own keys (``aws:cdk:...``).
_CDK_OWNED = ("@", "aws:", "aws-cdk:", "cdk-")


def _normalized(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def load_config(context: Mapping[str, Any]) -> AppConfig:
    """Build the config from a context mapping (cdk.json defaults merged with -c overrides)."""
    unknown = [k for k in context if k not in SPEC and not k.startswith(_CDK_OWNED)]
    if unknown:
        key = sorted(unknown)[0]
        by_shape = {_normalized(k): k for k in SPEC}
        near = [by_shape[_normalized(key)]] if _normalized(key) in by_shape else []
        near = near or difflib.get_close_matches(key, SPEC, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        raise ConfigError(f"context key {key!r} is not known{hint}")
    missing = [name for name in SPEC if name not in context]
    if missing:
        raise ConfigError(
            f"context key '{missing[0]}' is missing: set a default in cdk.json or pass -c {missing[0]}=..."
        )
    try:
        return AppConfig.model_validate({name: context[name] for name in SPEC})
    except ValidationError as exc:
        first = exc.errors()[0]
        cause = (first.get("ctx") or {}).get("error")
        raise (cause if isinstance(cause, ConfigError) else ConfigError(str(first["msg"]))) from None


def parse_context_args(items: list[str]) -> dict[str, str]:
    """``-c KEY=VALUE`` arguments as a mapping; a malformed one raises ValueError naming it."""
    context: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"-c expects KEY=VALUE, got {item!r}")
        context[key] = value
    return context


def resolve(overrides: Mapping[str, Any] | None = None) -> AppConfig:
    """cdk.json's context with ``overrides`` on top, validated exactly as synth validates it."""
    context = dict(json.loads((ROOT / "cdk.json").read_text())["context"])
    context.update(overrides or {})
    return load_config(context)


def context_of(cfg: AppConfig) -> dict[str, Any]:
    """The resolved config as context keys (what a run deployed), e.g. {"maxTasks": 10, ...}."""
    return cfg.model_dump(by_alias=True)
