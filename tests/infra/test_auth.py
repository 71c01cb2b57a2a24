"""apiAuth: who may call the order routes, and who the customer is (the runtime reads API_AUTH)."""

from tests.infra.conftest import function_by_handler, only, resources

ORDER_ROUTES = {"POST /orders", "POST /orders/sync", "GET /orders/{order_id}", "GET /orders/{order_id}/events"}
TICKETS = "POST /tracking/tickets"


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
    assert {k for k, r in routes.items() if r.get("AuthorizationType") == "JWT"} == ORDER_ROUTES | {TICKETS}
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


def _connect_route(template: dict) -> dict:
    [connect] = [
        r["Properties"]
        for r in resources(template, "AWS::ApiGatewayV2::Route", "TrackingApi").values()
        if r["Properties"]["RouteKey"] == "$connect"
    ]
    return connect


def _statements(template: dict, role_prefix: str) -> list[dict]:
    return [
        st
        for p in resources(template, "AWS::IAM::Policy").values()
        if any(role_prefix in str(r) for r in p["Properties"]["Roles"])
        for st in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_tracking_connect_is_authorized_as_the_order_routes_are(variant):
    # GIVEN apiAuth=jwt: a browser cannot send its token on a WebSocket, so $connect takes a connect ticket
    # the HTTP API issued to the signed-in caller, checked by a REQUEST authorizer (the route function)
    jwt = variant("lambda-jwt").service_json
    connect = _connect_route(jwt)
    assert connect["AuthorizationType"] == "CUSTOM"
    authorizer = only(jwt, "AWS::ApiGatewayV2::Authorizer", "TrackingApiConnectTickets")
    assert authorizer["AuthorizerType"] == "REQUEST"
    assert authorizer["IdentitySource"] == ["route.request.querystring.ticket"]
    assert "TrackingRouteFunction" in str(authorizer["AuthorizerUri"])
    assert "TrackingApiConnectTickets" in str(connect["AuthorizerId"])
    # THEN the API function may only put rows in the connections table (it issues tickets), and knows it
    api = function_by_handler(jwt, "orders.entrypoints.api.handler")
    assert "TrackingConnections" in str(api["Environment"]["Variables"]["CONNECTIONS_TABLE_NAME"])
    on_connections = [
        st for st in _statements(jwt, "ApiFunctionServiceRole") if "TrackingConnections" in str(st["Resource"])
    ]
    assert [st["Action"] for st in on_connections] == ["dynamodb:PutItem"]
    assert on_connections[0]["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["ticket#*"]}}
    # AND iam signs $connect as it signs the order routes; none (a demo) leaves it open, with no tickets
    assert _connect_route(variant("lambda-sqs").service_json)["AuthorizationType"] == "AWS_IAM"
    tuned = variant("lambda-tuned").service_json
    assert _connect_route(tuned).get("AuthorizationType", "NONE") == "NONE"
    assert TICKETS not in _routes(tuned)
    assert (
        "CONNECTIONS_TABLE_NAME"
        not in function_by_handler(tuned, "orders.entrypoints.api.handler")["Environment"]["Variables"]
    )
