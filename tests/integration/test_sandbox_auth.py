"""The sandbox front's JWT authorizer: what it lets through to the function, and what it answers 401."""

from sandbox.emulator.api_front import to_event


def test_the_front_checks_a_jwt_routes_token_as_the_authorizer_does(tmp_path, monkeypatch):
    from sandbox.emulator import tokens
    from sandbox.emulator.api_front import ApiFront

    key = tokens.create_key(tmp_path)
    (tmp_path / "other").mkdir()
    other = tokens.create_key(tmp_path / "other")  # another issuer's key
    monkeypatch.setenv("SANDBOX_JWT_KEY", str(key))
    monkeypatch.setenv("SANDBOX_API_ROUTES", '{"POST /orders": "JWT", "GET /catalog": "NONE"}')
    monkeypatch.setenv("SANDBOX_API_PORT", "0")
    front = ApiFront(lambda event, ctx: {"statusCode": 200})
    try:

        def asked(token: str | None, path: str = "/orders", method: str = "POST") -> dict:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            event = to_event(method, path, headers, b"{}", routes=front.routes)
            return {"denied": front.authorize(event), "event": event}

        good = asked(tokens.mint(key, "alice"))
        assert good["denied"] is None
        assert good["event"]["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] == "alice"
        for bad in (
            None,
            "not-a-token",
            tokens.mint(other, "alice"),  # forged: signed by a key the issuer does not hold
            tokens.mint(key, "alice", ttl_s=-60),  # expired
            tokens.mint(key, "alice", audience="someone-else"),
            tokens.mint(key, "alice", issuer="https://elsewhere.example.com/"),
        ):
            assert asked(bad)["denied"]["statusCode"] == 401, bad
        assert asked(None, "/catalog", "GET")["denied"] is None  # a public route takes no token
    finally:
        front.server.server_close()
