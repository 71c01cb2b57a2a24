"""Stateless resources: the HTTP API, the workers (ECS or Lambda) and their monitoring."""

from __future__ import annotations

from collections.abc import Callable

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from constructs_lib.apigw_account import ApiGatewayAccount
from constructs_lib.customer_pool import CustomerPool
from constructs_lib.ecs_workers import EcsQueueWorkers, ScalingProps, TaskProps
from constructs_lib.fan_out import TopicSubscriberQueue, workers_inbox
from constructs_lib.fault_injection import FaultInjection
from constructs_lib.lambda_workers import LambdaWorkers
from constructs_lib.managed_instance_workers import EnvironmentProps, ManagedInstanceWorkers
from constructs_lib.notifications import OrderNotifications
from constructs_lib.order_api import ApiAuth, OrderApi
from constructs_lib.order_runtime import PaymentSettings, PipelineData, powertools_layer, runtime_environment
from constructs_lib.order_tracking import OrderTracking
from constructs_lib.pipeline_monitoring import PipelineMonitoring
from constructs_lib.reconciler import OrderReconciler
from planner.config import (
    LOG_RETENTION_DAYS,
    NOTIFICATIONS_CONCURRENCY,
    TRACKING_PUSH_CONCURRENCY,
    AppConfig,
)
from stacks import outputs
from stacks.data_stack import DataStack


def _import_data(scope: Construct, data: DataStack) -> PipelineData:
    """Reference the data stack's resources by attribute, never by construct."""
    q, d = data.work.queue, data.work.dlq
    return PipelineData(
        topic=sns.Topic.from_topic_attributes(scope, "OrderEventsTopic", topic_arn=data.events.topic.topic_arn),
        topic_key=kms.Key.from_key_arn(scope, "OrderEventsKey", data.events.key.key_arn),
        queue=sqs.Queue.from_queue_attributes(
            scope, "OrdersQueue", queue_arn=q.queue_arn, queue_url=q.queue_url, queue_name=q.queue_name
        ),
        dlq=sqs.Queue.from_queue_attributes(
            scope, "OrdersDlq", queue_arn=d.queue_arn, queue_url=d.queue_url, queue_name=d.queue_name
        ),
        orders_table=dynamodb.Table.from_table_attributes(scope, "OrdersTable", table_arn=data.tables.orders.table_arn),
        idempotency_table=dynamodb.Table.from_table_attributes(
            scope, "IdempotencyTable", table_arn=data.tables.idempotency.table_arn
        ),
        catalog_table=dynamodb.Table.from_table_attributes(
            scope, "CatalogTable", table_arn=data.tables.catalog.table_arn
        ),
    )


class ServiceStack(Stack):
    """Attributes: ``api``, ``workers`` (LambdaWorkers | EcsQueueWorkers), ``tracking``, ``notifications``,
    ``monitoring``, and for further consumers ``pipeline_data`` and ``layer``."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: AppConfig, data: DataStack, **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.cfg = config
        self.pipeline_data = _import_data(self, data)  # what a new consumer construct reads (the data stack)
        self.retention = _retention(config.log_retention_days)
        self.removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
        self.layer = powertools_layer(
            self, "PowertoolsLayer", layer_arn=config.powertools_layer_arn, version=config.powertools_layer_version
        )
        self._api()
        self._consumers()
        self._reconciler()
        self._workers()
        self._monitoring()
        self.fault_injection: FaultInjection | None = None
        if config.chaos:
            self._fault_injection()
        self._outputs()

    def _environment(self, service: str, depth_limit: int = 0) -> dict[str, str]:
        cfg = self.cfg
        return runtime_environment(
            self.pipeline_data,
            payments=PaymentSettings(
                slots=cfg.payment_slots,
                latency_ms=cfg.payment_latency_ms,
                failure_rate=cfg.payment_failure_rate,
                lost_response_share=cfg.payment_lost_response_share,
                slow_share=cfg.payment_slow_share,
            ),
            visibility_timeout_s=cfg.visibility_timeout_s,
            idempotency_ttl_s=cfg.idempotency_ttl_s,
            backpressure_max_queue_depth=depth_limit,
            service=service,
        )

    def _auth(self) -> ApiAuth:
        """Who may call the order routes: SigV4 principals, the holders of tokens from the customer pool or
        the configured issuer, or anyone (demo).

        The customer pool lives in this stack, not the data stack: a pool there would be exported to this
        one, and switching apiAuth away from jwt would remove an export still imported, which
        CloudFormation refuses. Its removal policy is the data's (kept unless retainData=false), and a
        compute switch leaves it as it is.
        """
        cfg = self.cfg
        self.customers: CustomerPool | None = None
        if cfg.api_auth != "jwt":
            return ApiAuth(mode=cfg.api_auth)
        if cfg.customer_pool:
            self.customers = CustomerPool(self, "Customers", removal_policy=self.removal)
            CfnOutput(self, outputs.USER_POOL_ID, value=self.customers.user_pool.user_pool_id, description="Customers")
            CfnOutput(
                self,
                outputs.USER_POOL_CLIENT_ID,
                value=self.customers.client.user_pool_client_id,
                description="The storefront's app client: the audience of the customers' tokens",
            )
            return ApiAuth(mode="jwt", issuer=self.customers.issuer, audience=(self.customers.audience,))
        return ApiAuth(mode="jwt", issuer=cfg.jwt_issuer, audience=tuple(cfg.jwt_audience.split(",")))

    def _api(self) -> None:
        cfg = self.cfg
        self.api = OrderApi(
            self,
            "Api",
            data=self.pipeline_data,
            environment={
                **self._environment("orders-api", cfg.backpressure_max_queue_depth),
                # The Idempotency-Key contract of the checkout routes (docs/checkout.md).
                "CHECKOUT_KEY_WINDOW_S": str(cfg.idempotency_key_window_hours * 3600),
                "REQUIRE_IDEMPOTENCY_KEY": "true" if cfg.require_idempotency_key else "false",
                "CATALOG_CACHE_S": str(cfg.catalog_cache_s),
                "API_AUTH": cfg.api_auth,  # who the customer is: the caller (jwt, iam) or the body (none)
            },
            layer=self.layer,
            auth=self._auth(),
            throttle_rate=cfg.api_throttle_rate,
            throttle_burst=cfg.api_throttle_burst,
            reserved_concurrency=cfg.api_reserved_concurrency,
            log_retention=self.retention,
            removal_policy=self.removal,
        )
        self.api_gateway_account = (
            ApiGatewayAccount(self, "ApiGatewayAccount") if cfg.api_gateway_cloudwatch_role else None
        )

    def _consumers(self) -> None:
        """Consumers of the topic, each behind its own queue (constructs_lib/fan_out.py): one call each."""
        cfg = self.cfg
        self.tracking = OrderTracking(
            self,
            "Tracking",
            data=self.pipeline_data,
            environment=self._environment("orders-tracking"),
            layer=self.layer,
            auth=cfg.api_auth,
            throttle_rate=cfg.api_throttle_rate,
            throttle_burst=cfg.api_throttle_burst,
            reserved_concurrency=cfg.consumers_reserved_concurrency,
            push_concurrency=TRACKING_PUSH_CONCURRENCY,
            account_logging=self.api_gateway_account.account if self.api_gateway_account else None,
            log_retention=self.retention,
            removal_policy=self.removal,
        )
        if cfg.api_auth == "jwt":
            self.tracking.issue_tickets_from(self.api.function)
        self.notifications = OrderNotifications(
            self,
            "Notifications",
            data=self.pipeline_data,
            environment=self._environment("orders-notifications"),
            layer=self.layer,
            max_concurrency=NOTIFICATIONS_CONCURRENCY,
            reserved_concurrency=cfg.consumers_reserved_concurrency,
            log_retention=self.retention,
            removal_policy=self.removal,
        )

    def _reconciler(self) -> None:
        self.reconciler = OrderReconciler(
            self,
            "Reconciler",
            data=self.pipeline_data,
            environment={
                **self._environment("orders-reconciler"),
                "RECONCILE_AFTER_S": str(self.cfg.reconcile_after_s),
            },
            layer=self.layer,
            log_retention=self.retention,
            removal_policy=self.removal,
        )

    def _workers(self) -> None:
        cfg = self.cfg
        # The orders queue's subscription, at one construct path in every variant that reads the queue: SNS
        # answers an identical Subscribe with the existing ARN, so a subscription that moved to another logical
        # id on a compute switch would be created (as the same ARN) and then deleted, leaving none.
        self.workers_inbox: TopicSubscriberQueue | None = None
        if cfg.compute != "lambda" or cfg.lambda_trigger == "sqs":
            self.workers_inbox = workers_inbox(
                self, "WorkersInbox", data=self.pipeline_data, removal_policy=self.removal
            )
        Workers = LambdaWorkers | ManagedInstanceWorkers | EcsQueueWorkers
        builders: dict[str, Callable[[], Workers]] = {
            "lambda": self._lambda_workers,
            "lambda-mi": self._managed_instance_workers,
            "ecs": self._ecs_workers,
        }
        self.workers: Workers = builders[cfg.compute]()

    def _lambda_workers(self) -> LambdaWorkers:
        cfg = self.cfg
        return LambdaWorkers(
            self,
            "LambdaWorkers",
            data=self.pipeline_data,
            environment=self._environment("orders-worker"),
            layer=self.layer,
            trigger=cfg.lambda_trigger,
            memory_mb=cfg.lambda_memory_mb,
            timeout=Duration.seconds(cfg.lambda_timeout_s),
            reserved_concurrency=cfg.reserved_concurrency,
            max_concurrency=cfg.max_concurrency,
            pollers=(cfg.min_pollers, cfg.max_pollers) if cfg.poller_mode == "provisioned" else None,
            batch_size=cfg.batch_size,
            batch_window=Duration.seconds(cfg.batch_window_s),
            retry_attempts=cfg.sns_retry_attempts,
            max_event_age=Duration.seconds(cfg.max_event_age_s),
            log_retention=self.retention,
            removal_policy=self.removal,
        )

    def _managed_instance_workers(self) -> ManagedInstanceWorkers:
        cfg = self.cfg
        return ManagedInstanceWorkers(
            self,
            "ManagedInstanceWorkers",
            data=self.pipeline_data,
            environment=self._environment("orders-worker"),
            layer=self.layer,
            environments=EnvironmentProps(
                concurrency=cfg.mi_concurrency,
                memory_gib_per_vcpu=cfg.mi_memory_per_vcpu,
                memory_mb=cfg.mi_memory_mb,
                min_envs=cfg.mi_min_envs,
                max_envs=cfg.mi_max_envs,
            ),
            timeout=Duration.seconds(cfg.lambda_timeout_s),
            max_concurrency=cfg.max_concurrency,
            batch_size=cfg.batch_size,
            batch_window=Duration.seconds(cfg.batch_window_s),
            log_retention=self.retention,
            removal_policy=self.removal,
        )

    def _ecs_workers(self) -> EcsQueueWorkers:
        cfg = self.cfg
        return EcsQueueWorkers(
            self,
            "EcsWorkers",
            data=self.pipeline_data,
            environment=self._environment("orders-worker"),
            task=TaskProps(
                image_uri=cfg.container_image,
                worker_concurrency=cfg.worker_concurrency,
                cpu=int(cfg.task_cpu),
                memory_mb=cfg.task_memory_mb,
                spot=cfg.fargate_capacity == "spot",
                on_demand_base=cfg.fargate_on_demand_base,
                stop_timeout=Duration.seconds(cfg.task_stop_timeout_s),
            ),
            scaling=ScalingProps(
                min_tasks=cfg.min_tasks,
                max_tasks=cfg.max_tasks,
                backlog_per_task_target=cfg.backlog_per_task_target,
                wake_queue_depth=cfg.wake_queue_depth,
                scale_out_cooldown=Duration.seconds(cfg.scale_out_cooldown_s),
                scale_in_cooldown=Duration.seconds(cfg.scale_in_cooldown_s),
            ),
            log_retention=self.retention,
            removal_policy=self.removal,
        )

    def _monitoring(self) -> None:
        cfg = self.cfg
        self.monitoring = PipelineMonitoring(
            self,
            "Monitoring",
            data=self.pipeline_data,
            workers=self.workers.signals(),
            api=self.api.signals(latency_p99_ms=cfg.alarm_api_latency_p99_ms),
            oldest_message_age=Duration.seconds(cfg.alarm_oldest_age_s),
            consumer_alarms={
                "TrackingPushDeadLetters": self.tracking.pusher.dead_letters,
                "NotificationsDeadLetters": self.notifications.consumer.dead_letters,
                "StuckOrders": self.reconciler.stuck,
            },
            alarm_email=cfg.alarm_email,
            dashboard_name=f"{cfg.stack_prefix}-orders",
            removal_policy=self.removal,
        )

    def _fault_injection(self) -> None:
        """AWS FIS experiments on this stack's workers, stopped by the DeadLetters and OldestMessageAge alarms."""
        stop = [self.monitoring.alarms["DeadLetters"], self.monitoring.alarms["OldestMessageAge"]]
        injection: FaultInjection
        if isinstance(self.workers, LambdaWorkers):
            injection = FaultInjection(
                self,
                "FaultInjection",
                stop_alarms=stop,
                function=self.workers.function,
                extension_layer_arn=self.cfg.fis_lambda_extension_arn,
                removal_policy=self.removal,
            )
        else:
            assert isinstance(self.workers, EcsQueueWorkers)  # config refuses chaos with compute=lambda-mi
            injection = FaultInjection(
                self,
                "FaultInjection",
                stop_alarms=stop,
                cluster=self.workers.cluster,
                service_name=self.workers.service.service_name,
                removal_policy=self.removal,
            )
        self.fault_injection = injection
        CfnOutput(
            self,
            outputs.EXPERIMENT_TEMPLATE_ID,
            value=injection.template.attr_id,
            description="aws fis start-experiment --experiment-template-id <this>",
        )

    def _outputs(self) -> None:
        """What the sandbox, the preflight, `make smoke` and the runbooks read (``stacks.outputs``)."""
        cfg = self.cfg
        CfnOutput(self, outputs.API_URL, value=self.api.url, description="Base URL of the order API")
        CfnOutput(self, outputs.COMPUTE, value=cfg.variant)
        CfnOutput(self, outputs.DASHBOARD_NAME, value=self.monitoring.dashboard.dashboard_name)
        CfnOutput(self, outputs.ALARM_TOPIC_ARN, value=self.monitoring.alarm_topic.topic_arn)
        CfnOutput(self, outputs.API_FUNCTION_NAME, value=self.api.function.function_name)
        CfnOutput(self, outputs.TRACKING_URL, value=self.tracking.url, description="wss:// URL of order tracking")
        CfnOutput(self, outputs.TRACKING_FUNCTION_NAME, value=self.tracking.route_function.function_name)
        CfnOutput(self, outputs.TRACKING_PUSH_FUNCTION_NAME, value=self.tracking.pusher.function.function_name)
        CfnOutput(self, outputs.NOTIFICATIONS_FUNCTION_NAME, value=self.notifications.consumer.function.function_name)
        CfnOutput(self, outputs.RECONCILER_FUNCTION_NAME, value=self.reconciler.function.function_name)
        if isinstance(self.workers, (LambdaWorkers, ManagedInstanceWorkers)):
            CfnOutput(self, outputs.WORKER_FUNCTION_NAME, value=self.workers.function.function_name)
        else:
            CfnOutput(self, outputs.CLUSTER_NAME, value=self.workers.cluster.cluster_name)
            CfnOutput(self, outputs.WORKER_SERVICE_NAME, value=self.workers.service.service_name)


def _retention(days: int) -> logs.RetentionDays:
    """The enum member for a validated number of days (the enum is ordered like LOG_RETENTION_DAYS)."""
    members = [m for m in logs.RetentionDays if m is not logs.RetentionDays.INFINITE]
    return dict(zip(LOG_RETENTION_DAYS, members, strict=True))[days]
