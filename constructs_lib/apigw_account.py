"""The region's API Gateway account setting: the role API Gateway writes WebSocket (and REST) logs with.

API Gateway refuses a WebSocket stage with access logging ("CloudWatch Logs role ARN must be set in account
settings to enable logging") until the account has a ``cloudWatchRoleArn``; HTTP APIs deliver their logs
without it. The setting is one per account and region, so ``-c apiGatewayCloudWatchRole=false`` leaves an
existing one alone (``make preflight`` then checks it is there). Source: API Gateway developer guide,
"Set up CloudWatch logging for REST APIs" (permissions) and AWS::ApiGateway::Account ("you should only have
one AWS::ApiGateway::Account resource per region per account"; after the stack is deleted "API Gateway can
still assume the provided IAM role"): so the role and the setting are retained with the stack gone, as
aws-cdk-lib's RestApi does with its own CloudWatch role.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw_v1
from aws_cdk import aws_iam as iam
from constructs import Construct

from constructs_lib.nag import acknowledge

PUSH_TO_CLOUDWATCH = "service-role/AmazonAPIGatewayPushToCloudWatchLogs"


class ApiGatewayAccount(Construct):
    """Attributes: ``role``, ``account`` (the AWS::ApiGateway::Account a logging stage must depend on)."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "CloudWatchRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="API Gateway writes this account's API logs to CloudWatch Logs",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(PUSH_TO_CLOUDWATCH)],
        )
        self.role.apply_removal_policy(RemovalPolicy.RETAIN)
        acknowledge(
            self.role,
            f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{PUSH_TO_CLOUDWATCH}]",
            "The managed policy API Gateway documents for its account logging role; it only writes log groups.",
        )
        self.account = apigw_v1.CfnAccount(self, "Account", cloud_watch_role_arn=self.role.role_arn)
        self.account.apply_removal_policy(RemovalPolicy.RETAIN)
        self.account.node.add_dependency(self.role)
