"""apiAuth: who may call the order routes, and who the customer is (the runtime reads API_AUTH)."""

from tests.infra.conftest import function_by_handler, only, resources

ORDER_ROUTES = {"POST /orders", "POST /orders/sync", "GET /orders/{order_id}", "GET /orders/{order_id}/events"}


def _routes(template: dict) -> dict[str, dict]:
    return {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in resources(template, "AWS::ApiGatewayV2::Route", "ApiHttpApi").values()
    }


def test_jwt_with_the_stacks_own_customer_pool(variant):
    v = variant("lambda-jwt")
    # GIVEN apiAuth=jwt and no issuer: the service stack holds the customers (kept like the data), and
    # nothing is exported for them (an export a later apiAuth switch would remove is refused by CloudFormation)
    assert not resources(v.data_json, "AWS::Cognito::UserPool")
    pool_resource = next(iter(resources(v.service_json, "AWS::Cognito::UserPool", "CustomersUserPool").values()))
    assert pool_resource["DeletionPolicy"] == "Retain"
    pool = pool_resource["Properties"]
    assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] >= 12 and pool["MfaConfiguration"] == "OPTIONAL"
    client = only(v.service_json, "AWS::Cognito::UserPoolClient", "CustomersUserPoolStorefront")
    assert client["GenerateSecret"] is False and client["PreventUserExistenceErrors"] == "ENABLED"
    assert "AllowedOAuthFlows" not in client  # SRP through the SDK: no hosted-UI grants left open
    assert {"UserPoolId", "UserPoolClientId"} <= set(v.service_json["Outputs"])
    assert v.data_json == variant("lambda-sqs").data_json  # apiAuth changes nothing in the data stack
    # THEN every order route takes a token of that pool for that client; the sale page stays public
    authorizer = only(v.service_json, "AWS::ApiGatewayV2::Authorizer", "ApiHttpApiCustomers")
    assert authorizer["AuthorizerType"] == "JWT"
    assert authorizer["IdentitySource"] == ["$request.header.Authorization"]
    issuer = str(authorizer["JwtConfiguration"]["Issuer"])
    assert "cognito-idp" in issuer and "UserPool" in issuer
    assert "CustomersUserPoolStorefront" in str(authorizer["JwtConfiguration"]["Audience"])
    routes = _routes(v.service_json)
    assert {k for k, r in routes.items() if r.get("AuthorizationType") == "JWT"} == ORDER_ROUTES
    assert routes["GET /catalog"].get("AuthorizationType", "NONE") == "NONE"
    api = function_by_handler(v.service_json, "orders.entrypoints.api.handler")
    assert api["Environment"]["Variables"]["API_AUTH"] == "jwt"


def test_jwt_with_an_issuer_of_ones_own_creates_no_pool(variant):
    v = variant("ecs-jwt-issuer")
    assert not resources(v.service_json, "AWS::Cognito::UserPool")
    authorizer = only(v.service_json, "AWS::ApiGatewayV2::Authorizer", "ApiHttpApiCustomers")
    assert authorizer["JwtConfiguration"] == {
        "Issuer": "https://login.example.com/",
        "Audience": ["storefront", "mobile"],
    }


def test_the_default_is_iam_and_the_runtime_is_told(variant):
    v = variant("lambda-sqs")
    assert not resources(v.service_json, "AWS::Cognito::UserPool")
    api = function_by_handler(v.service_json, "orders.entrypoints.api.handler")
    assert api["Environment"]["Variables"]["API_AUTH"] == "iam"
    assert (
        function_by_handler(variant("lambda-tuned").service_json, "orders.entrypoints.api.handler")["Environment"][
            "Variables"
        ]["API_AUTH"]
        == "none"
    )
