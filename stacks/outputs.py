"""The stacks' output names: what the sandbox, the preflight, `make smoke` and the runbooks find resources by.

Plain constants (no CDK), so every reader imports the names the stacks write instead of spelling them again.
"""

from __future__ import annotations

DATA_STACK = "-data"  # stack name suffixes: <prefix>-data, <prefix>-service
SERVICE_STACK = "-service"

# data stack
ORDER_EVENTS_TOPIC_ARN = "OrderEventsTopicArn"
ORDERS_QUEUE_URL = "OrdersQueueUrl"
ORDERS_DLQ_URL = "OrdersDlqUrl"
ORDERS_TABLE_NAME = "OrdersTableName"
CATALOG_TABLE_NAME = "CatalogTableName"
USER_POOL_ID = "UserPoolId"  # apiAuth=jwt without an issuer: the customers' Cognito pool
USER_POOL_CLIENT_ID = "UserPoolClientId"  # ... and the storefront's app client (the tokens' audience)
STOCK_SHARDS = "StockShards"  # what `make catalog` splits each product's stock over (context stockShards)

# service stack
API_URL = "ApiUrl"
COMPUTE = "Compute"  # ecs | lambda-sqs | lambda-sqs-provisioned | lambda-sns | lambda-mi (AppConfig.variant)
DASHBOARD_NAME = "DashboardName"
ALARM_TOPIC_ARN = "AlarmTopicArn"
API_FUNCTION_NAME = "ApiFunctionName"
TRACKING_URL = "TrackingUrl"
TRACKING_FUNCTION_NAME = "TrackingFunctionName"
TRACKING_PUSH_FUNCTION_NAME = "TrackingPushFunctionName"
NOTIFICATIONS_FUNCTION_NAME = "NotificationsFunctionName"
RECONCILER_FUNCTION_NAME = "ReconcilerFunctionName"
WORKER_FUNCTION_NAME = "WorkerFunctionName"  # the Lambda variants
CLUSTER_NAME = "ClusterName"  # the ECS variant
WORKER_SERVICE_NAME = "WorkerServiceName"
EXPERIMENT_TEMPLATE_ID = "ExperimentTemplateId"  # when fault injection is deployed
