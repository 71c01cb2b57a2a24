"""The shop's customers: a Cognito user pool and the app client the storefront signs them in with.

Created by the data stack when ``apiAuth=jwt`` names no issuer of its own; the HTTP API's JWT authorizer
trusts its tokens (issuer ``https://cognito-idp.<region>.amazonaws.com/<pool id>``, audience the client id).
Stateful (the customers' accounts): it lives with the data, so no compute switch touches it.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from constructs_lib.nag import acknowledge


class CustomerPool(Construct):
    """Attributes: ``user_pool``, ``client``, ``issuer`` (the JWT issuer URL), ``audience`` (the client id)."""

    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            self_sign_up_enabled=True,  # shoppers create their own accounts
            sign_in_aliases=cognito.SignInAliases(email=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            password_policy=cognito.PasswordPolicy(
                min_length=12, require_digits=True, require_lowercase=True, require_uppercase=True, require_symbols=True
            ),
            feature_plan=cognito.FeaturePlan.ESSENTIALS,
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            deletion_protection=removal_policy == RemovalPolicy.RETAIN,
            removal_policy=removal_policy,
        )
        self.client = self.user_pool.add_client(
            "Storefront",
            auth_flows=cognito.AuthFlow(user_srp=True),
            prevent_user_existence_errors=True,
            id_token_validity=Duration.hours(1),
            access_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.days(30),
            generate_secret=False,  # a browser or app client cannot keep a secret
            disable_o_auth=True,  # SRP sign-in through the SDK; no hosted-UI grants to leave open
        )
        self.issuer = f"https://cognito-idp.{Stack.of(self).region}.amazonaws.com/{self.user_pool.user_pool_id}"
        self.audience = self.client.user_pool_client_id
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG2",
            "MFA is optional for shoppers (TOTP offered): a required second factor at checkout loses the sale; "
            "tokens are short-lived (1 h).",
        )
        for rule in ("AwsSolutions-COG3", "AwsSolutions-COG8"):
            acknowledge(
                self.user_pool,
                rule,
                "Threat protection (the Plus feature plan) is a per-active-user cost the operator chooses for a "
                "shop's customers; the pool is created on the Essentials plan without it.",
            )
