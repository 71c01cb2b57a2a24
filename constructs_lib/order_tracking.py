"""Order tracking over WebSocket: the API, its connections table, the route function and the pusher.

Customers connect to the WebSocket API and send ``track`` (docs/tracking.md); the route function
answers with the order's log after the client's last sequence, and registers the connection. The
pusher is a ``TopicConsumer`` of every order event behind its own queue: it posts each event to the
connections tracking that order and forgets those API Gateway reports gone (410). It only consumes
the topic, so it works with either ``compute``.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from constructs_lib.fan_out import TopicConsumer
from constructs_lib.nag import acknowledge
from constructs_lib.order_api import WEBSOCKET_ACCESS_LOG, JsonAccessLogs
from constructs_lib.order_runtime import PipelineData, runtime_function

# What happens to an order after a client can track it: a client tracks an order it has placed, so its
# PLACED entry always comes by catch-up; pushing order_placed live would reach no one.
TRACKED_EVENTS = ("payment_started", "payment_confirmed", "payment_failed")
STAGE_NAME = "live"


class OrderTracking(Construct):
    """Attributes: ``api``, ``stage``, ``connections`` (table), ``route_function``, ``pusher`` (TopicConsumer).

    ``auth`` (the HTTP API's ``apiAuth``): ``iam``, $connect needs a SigV4-signed request, as the HTTP API
    does; ``jwt``, $connect needs a connect ticket the HTTP API issued to the signed-in caller
    (``POST /tracking/tickets``), checked by a REQUEST authorizer (the route function); ``none``, anyone.
    ``account_logging``: the API Gateway account setting the logging stage waits for (``ApiGatewayAccount``),
    or None where the account already has its CloudWatch role.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data: PipelineData,
        environment: dict[str, str],
        layer: lambda_.ILayerVersion,
        auth: str,
        throttle_rate: int,
        throttle_burst: int,
        reserved_concurrency: int,
        push_concurrency: int,
        account_logging: Construct | None,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self._connections_table()
        self._route_function(environment, layer, reserved_concurrency, log_retention, removal_policy)
        self._api(auth)
        self._stage(throttle_rate, throttle_burst, account_logging, log_retention, removal_policy)
        self._pusher(data, environment, layer, push_concurrency, reserved_concurrency, log_retention, removal_policy)
        self._grants(data)

    def _connections_table(self) -> None:
        self.connections = dynamodb.Table(
            self,
            "Connections",
            partition_key=dynamodb.Attribute(name="connection_id", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="target", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute="expires_at",
            # Cheap at this size, and what every table here gets; the rows expire within 2 hours anyway.
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=RemovalPolicy.DESTROY,  # connections live two hours at most
        )
        # No index: the pusher finds an order's trackers by a strongly consistent query of the order's own
        # rows (runtime/orders/adapters/connections.py), so a push right after a track cannot miss it.

    def _route_function(
        self,
        environment: dict[str, str],
        layer: lambda_.ILayerVersion,
        reserved_concurrency: int,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        self.route_logs = logs.LogGroup(self, "RouteLogs", retention=log_retention, removal_policy=removal_policy)
        self.route_function = runtime_function(
            self,
            "RouteFunction",
            handler="orders.entrypoints.tracking.handler",
            description="Order tracking: $connect, $disconnect, track (catch-up from the order's log)",
            environment={**environment, "CONNECTIONS_TABLE_NAME": self.connections.table_name},
            layer=layer,
            log_group=self.route_logs,
            memory_mb=256,
            timeout=Duration.seconds(10),
            reserved_concurrent_executions=reserved_concurrency or None,
        )

    def _api(self, auth: str) -> None:
        integration = integrations.WebSocketLambdaIntegration("Routes", self.route_function)
        connect_auth: apigw.IWebSocketRouteAuthorizer
        if auth == "iam":
            connect_auth = authorizers.WebSocketIamAuthorizer()
        elif auth == "jwt":
            # The ticket rides in the query string (browsers cannot set headers on a WebSocket); a request
            # without one is refused by API Gateway (401) before the function runs. WebSocket authorizers
            # cache nothing, and a ticket is single-use anyway.
            connect_auth = authorizers.WebSocketLambdaAuthorizer(
                "ConnectTickets", self.route_function, identity_source=["route.request.querystring.ticket"]
            )
        else:
            connect_auth = apigw.WebSocketNoneAuthorizer()
        self.api = apigw.WebSocketApi(
            self,
            "Api",
            description="Order tracking: status pushed with catch-up",
            connect_route_options=apigw.WebSocketRouteOptions(integration=integration, authorizer=connect_auth),
            disconnect_route_options=apigw.WebSocketRouteOptions(integration=integration),
            default_route_options=apigw.WebSocketRouteOptions(integration=integration),
        )
        self.api.add_route("track", integration=integration)
        if auth == "none":
            acknowledge(
                self.api,
                "AwsSolutions-APIG4",
                "apiAuth=none was chosen in context for a public demo: anyone may connect and track an order id "
                "they know (iam and jwt authorize $connect, and a connection tracks only its customer's orders).",
            )
        for route in ("$disconnect-Route", "$default-Route", "track-Route"):
            # API Gateway authorizes a WebSocket connection once, on $connect (it accepts an authorizer on
            # no other route); every later message arrives on that authorized connection.
            acknowledge(
                self.api.node.find_child(route),
                "AwsSolutions-APIG4",
                "WebSocket routes other than $connect run on the connection $connect authorized.",
            )

    def _stage(
        self,
        throttle_rate: int,
        throttle_burst: int,
        account_logging: Construct | None,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        self.access_logs = logs.LogGroup(self, "AccessLogs", retention=log_retention, removal_policy=removal_policy)
        self.stage = apigw.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=STAGE_NAME,
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(rate_limit=throttle_rate, burst_limit=throttle_burst),
            access_log_settings=JsonAccessLogs(self.access_logs, WEBSOCKET_ACCESS_LOG),
        )
        if account_logging is not None:
            # API Gateway needs an API of the account before it takes the account setting (AWS::ApiGateway::Account:
            # "add a dependency on another API Gateway resource"), and the logging stage needs the setting.
            account_logging.node.add_dependency(self.api)
            self.stage.node.add_dependency(account_logging)
        else:
            acknowledge(
                self.stage,
                "Deploy-ApiGatewayAccountRole",
                "apiGatewayCloudWatchRole=false: the account's existing API Gateway CloudWatch role is used; "
                "make preflight refuses to deploy when the account has none.",
            )
        self.route_function.add_environment("WEBSOCKET_MANAGEMENT_ENDPOINT", self.stage.callback_url)

    def _pusher(
        self,
        data: PipelineData,
        environment: dict[str, str],
        layer: lambda_.ILayerVersion,
        push_concurrency: int,
        reserved_concurrency: int,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        management = {"WEBSOCKET_MANAGEMENT_ENDPOINT": self.stage.callback_url}

        self.pusher = TopicConsumer(
            self,
            "Pusher",
            topic=data.topic,
            event_types=TRACKED_EVENTS,
            handler="orders.entrypoints.tracking.push_handler",
            description="Order tracking: pushes each order event to the connections tracking it",
            environment={**environment, "CONNECTIONS_TABLE_NAME": self.connections.table_name, **management},
            layer=layer,
            max_concurrency=push_concurrency,
            reserved_concurrency=reserved_concurrency,
            log_retention=log_retention,
            removal_policy=removal_policy,
        )

    def _grants(self, data: PipelineData) -> None:
        data.orders_table.grant(self.route_function, "dynamodb:GetItem")
        self.route_function.add_to_role_policy(
            iam.PolicyStatement(
                # GetItem: a connection's customer; DeleteItem also redeems connect tickets.
                actions=["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:DeleteItem"],
                resources=[self.connections.table_arn],
            )
        )
        self.pusher.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:Query", "dynamodb:DeleteItem"], resources=[self.connections.table_arn]
            )
        )
        stack = Stack.of(self)
        api_id = stack.resolve(stack.get_logical_id(self.api.node.default_child))  # type: ignore[arg-type]
        for fn in (self.route_function, self.pusher.function):
            self.stage.grant_management_api_access(fn)
            assert fn.role is not None
            acknowledge(
                fn.role,
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:"
                f"<{api_id}>/{STAGE_NAME}/*/@connections/*]",
                "Connection ids exist only at run time; the grant is this API's stage's @connections and nothing else.",
            )

    def issue_tickets_from(self, function: lambda_.Function) -> None:
        """Let the HTTP API's function issue connect tickets: it may only put rows in the connections table."""
        function.add_environment("CONNECTIONS_TABLE_NAME", self.connections.table_name)
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:PutItem"],
                resources=[self.connections.table_arn],
                # tickets only: the API cannot write a connection's row (and so its customer)
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["ticket#*"]}},
            )
        )

    @property
    def url(self) -> str:
        return self.stage.url
