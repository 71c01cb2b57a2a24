"""The HTTP API: POST /orders, POST /orders/sync, GET /orders/{order_id}[/events] on one thin function."""

from __future__ import annotations

import json
from dataclasses import dataclass

import jsii
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw_v1
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from constructs_lib.nag import acknowledge
from constructs_lib.order_runtime import PipelineData, grant_api, runtime_function
from constructs_lib.pipeline_monitoring import ApiSignals

# API Gateway v2 refuses a stage whose access-log format names a variable its protocol does not have
# ("The following context variables are not supported"); the REST-only standard fields
# (``$context.resourcePath``) are not HTTP API variables, and WebSocket has no HTTP request line.
# Each variable used here is in constructs_lib/data/apigw_access_log_variables.json, which the deploy rules
# (constructs_lib/deploy_rules.py) check every stage against.
HTTP_ACCESS_LOG = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "routeKey": "$context.routeKey",
    "path": "$context.path",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "integrationError": "$context.integrationErrorMessage",
}
# No query string here: with apiAuth=jwt it holds the connect ticket (single-use, 60 s). Execution logging or
# data tracing on the stage, or POWERTOOLS_LOGGER_LOG_EVENT on the route function, would record it.
WEBSOCKET_ACCESS_LOG = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "eventType": "$context.eventType",
    "routeKey": "$context.routeKey",
    "connectionId": "$context.connectionId",
    "status": "$context.status",
    "integrationError": "$context.integration.error",
}


@jsii.implements(apigw.IAccessLogSettings)
class JsonAccessLogs:
    """One JSON object per request, with the fields given (a protocol's own variables only)."""

    def __init__(self, log_group: logs.ILogGroup, fields: dict[str, str]) -> None:
        self._destination = apigw.LogGroupLogDestination(log_group)
        self._fields = fields

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw_v1.AccessLogFormat:
        return apigw_v1.AccessLogFormat.custom(json.dumps(self._fields, separators=(",", ":")))


@dataclass(frozen=True)
class ApiAuth:
    """``mode``: ``iam`` (callers sign with SigV4 and need ``execute-api:Invoke``), ``jwt`` (a bearer token
    from ``issuer`` for one of ``audience``: the customer is its subject) or ``none`` (a public demo)."""

    mode: str
    issuer: str = ""
    audience: tuple[str, ...] = ()


class OrderApi(Construct):
    """Attributes: ``http_api``, ``stage``, ``function``, ``access_logs``. ``auth``: see ApiAuth."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data: PipelineData,
        environment: dict[str, str],
        layer: lambda_.ILayerVersion,
        auth: ApiAuth,
        throttle_rate: int,
        throttle_burst: int,
        reserved_concurrency: int,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function_logs = logs.LogGroup(self, "FunctionLogs", retention=log_retention, removal_policy=removal_policy)
        self.function = runtime_function(
            self,
            "Function",
            handler="orders.entrypoints.api.handler",
            description="Order API: accept (async), pay inline (sync baseline), read state",
            environment=environment,
            layer=layer,
            log_group=self.function_logs,
            memory_mb=512,
            timeout=Duration.seconds(29),
            # A flood of requests must not take the account's concurrency from the workers.
            reserved_concurrent_executions=reserved_concurrency or None,
        )
        grant_api(data, self.function)

        authorizer: apigw.IHttpRouteAuthorizer
        if auth.mode == "iam":
            authorizer = authorizers.HttpIamAuthorizer()
        elif auth.mode == "jwt":
            authorizer = authorizers.HttpJwtAuthorizer(
                "Customers",
                auth.issuer,
                jwt_audience=list(auth.audience),
                identity_source=["$request.header.Authorization"],
            )
        else:
            authorizer = apigw.HttpNoneAuthorizer()
        self.http_api = apigw.HttpApi(
            self,
            "HttpApi",
            description="Flash-sale order intake",
            create_default_stage=False,
            default_authorizer=authorizer,
        )
        integration = integrations.HttpLambdaIntegration("Orders", self.function)
        self.http_api.add_routes(path="/orders", methods=[apigw.HttpMethod.POST], integration=integration)
        self.http_api.add_routes(path="/orders/sync", methods=[apigw.HttpMethod.POST], integration=integration)
        self.http_api.add_routes(path="/orders/{order_id}", methods=[apigw.HttpMethod.GET], integration=integration)
        self.http_api.add_routes(
            path="/orders/{order_id}/events", methods=[apigw.HttpMethod.GET], integration=integration
        )
        if auth.mode == "jwt":
            # Connect tickets for order tracking: the WebSocket carries the signed-in caller this way
            # (constructs_lib/order_tracking.py issues them from this function).
            self.http_api.add_routes(path="/tracking/tickets", methods=[apigw.HttpMethod.POST], integration=integration)
        # The sale page's product list is public whatever apiAuth is: it shows what anyone may see (prices
        # and stock left), cached by clients for catalogCacheSeconds, and writes nothing.
        [catalog] = self.http_api.add_routes(
            path="/catalog",
            methods=[apigw.HttpMethod.GET],
            integration=integration,
            authorizer=apigw.HttpNoneAuthorizer(),
        )
        if auth.mode != "none":
            acknowledge(
                catalog,
                "AwsSolutions-APIG4",
                "GET /catalog is the public sale page (prices and stock left, read-only); every order route "
                "keeps the API's authorizer.",
            )

        self.access_logs = logs.LogGroup(self, "AccessLogs", retention=log_retention, removal_policy=removal_policy)
        self.stage = apigw.HttpStage(
            self,
            "DefaultStage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(rate_limit=throttle_rate, burst_limit=throttle_burst),
            access_log_settings=JsonAccessLogs(self.access_logs, HTTP_ACCESS_LOG),
        )
        if auth.mode == "none":
            acknowledge(
                self.http_api,
                "AwsSolutions-APIG4",
                "apiAuth=none was chosen in context for a public demo; the default is IAM auth.",
            )

    def signals(self, *, latency_p99_ms: int) -> ApiSignals:
        minute = Duration.minutes(1)
        return ApiSignals(
            server_errors=self.http_api.metric_server_error(statistic="Sum", period=minute),
            latency_p99=self.http_api.metric_latency(statistic="p99", period=minute),
            latency_p99_threshold_ms=latency_p99_ms,
        )

    @property
    def url(self) -> str:
        return self.stage.url
