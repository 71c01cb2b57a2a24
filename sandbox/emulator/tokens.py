"""Signed-in customers in the sandbox: a local issuer's key pair, tokens it signs, and the check the HTTP
API's JWT authorizer makes (signature by the issuer's JWKS, ``iss``, ``aud``, ``exp`` and ``nbf``).

The stacks deploy with ``apiAuth=jwt`` and this issuer (``jwtIssuer``/``jwtAudience`` in the run's
context), so the order routes take a bearer token as they do on AWS, and the customer is its subject.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

ISSUER = "http://127.0.0.1/sandbox-issuer"  # never fetched: the front checks tokens with the key file itself
AUDIENCE = "flash-sale-sandbox"
CONTEXT = {"apiAuth": "jwt", "jwtIssuer": ISSUER, "jwtAudience": AUDIENCE}
KEY_FILE = "jwt-key.json"
TOKEN_TTL_S = 3600


class Unauthorized(Exception):
    """The token is missing, forged, expired, or for another issuer or audience."""


def create_key(directory: Path) -> Path:
    """A fresh RS256 key pair for this run's issuer, private half in ``directory/jwt-key.json``."""
    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048, parameters={"kid": f"sandbox-{int(time.time())}", "use": "sig", "alg": "RS256"})
    path = directory / KEY_FILE
    path.write_text(json.dumps(key.as_dict(private=True)))
    path.chmod(0o600)
    return path


def mint(
    key_file: Path, customer: str, *, ttl_s: int = TOKEN_TTL_S, issuer: str = ISSUER, audience: str = AUDIENCE
) -> str:
    """A token for ``customer``, as the shop's identity provider would sign it at sign-in."""
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    key = RSAKey.import_key(json.loads(key_file.read_text()))
    now = int(time.time())
    claims = {"sub": customer, "iss": issuer, "aud": audience, "iat": now, "nbf": now, "exp": now + ttl_s}
    return str(jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key))


class Verifier:
    """What the JWT authorizer checks before a route's function runs; the claims it passes on."""

    def __init__(self, key_file: Path, *, issuer: str = ISSUER, audiences: tuple[str, ...] = (AUDIENCE,)) -> None:
        from joserfc.jwk import KeySet, RSAKey

        key = RSAKey.import_key(json.loads(key_file.read_text()))
        self._keys = KeySet.import_key_set({"keys": [key.as_dict(private=False)]})
        self.issuer, self.audiences = issuer, audiences

    def claims(self, authorization: str | None) -> dict[str, Any]:
        from joserfc import jwt
        from joserfc.errors import JoseError

        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("no bearer token")
        try:
            decoded = jwt.decode(token.strip(), self._keys, algorithms=["RS256"])
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.issuer}, exp={"essential": True}, sub={"essential": True}
            ).validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise Unauthorized(str(exc)) from None
        claims = dict(decoded.claims)
        # API Gateway: the token's aud, or its client_id when it has no aud (Cognito access tokens), must be
        # one of the authorizer's audiences.
        audience = claims.get("aud", claims.get("client_id"))
        given = audience if isinstance(audience, list) else [audience]
        if not any(a in self.audiences for a in given):
            raise Unauthorized("the token is for another audience")
        return claims
