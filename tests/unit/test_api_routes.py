"""The sandbox's HTTP front serves the routes the stack deploys, matched as API Gateway matches them."""

from sandbox.emulator.api_front import DEFAULT_ROUTES, http_routes, match_route, to_event


def test_routes_come_from_the_template_http_only():
    template = {
        "Resources": {
            "A": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {"RouteKey": "POST /orders"}},
            "B": {
                "Type": "AWS::ApiGatewayV2::Route",
                "Properties": {"RouteKey": "GET /orders/{order_id}", "AuthorizationType": "JWT"},
            },
            "W": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {"RouteKey": "$connect"}},
            "T": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {"RouteKey": "track"}},
            "Q": {"Type": "AWS::SQS::Queue", "Properties": {}},
        }
    }
    assert http_routes(template) == {"GET /orders/{order_id}": "JWT", "POST /orders": "NONE"}


def test_a_literal_segment_wins_over_a_parameter_and_an_undeployed_route_matches_nothing():
    routes = DEFAULT_ROUTES
    assert match_route("POST", "/orders/sync", routes) == "POST /orders/sync"
    assert match_route("GET", "/orders/o-1", routes) == "GET /orders/{order_id}"
    assert match_route("GET", "/orders/o-1/events", routes) == "GET /orders/{order_id}/events"
    assert match_route("GET", "/catalog", routes) == "GET /catalog"
    assert match_route("GET", "/orders/", routes) is None
    assert match_route("DELETE", "/orders/o-1", routes) is None
    # A stack without the catalog route: the front answers 404 itself, as API Gateway does
    event = to_event("GET", "/catalog", {}, b"", routes=["POST /orders"])
    assert event["routeKey"] == "$default"
