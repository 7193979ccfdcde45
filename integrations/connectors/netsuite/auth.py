"""NetSuite OAuth 2.0 machine-to-machine (client credentials) auth: a JWT client assertion
signed with the certificate's private key, traded for a one-hour bearer token.

The assertion (NetSuite help, "OAuth 2.0 Client Credentials (M2M) Setup"): header `kid` = the
certificate id shown on the integration's M2M mapping, `alg` PS256 by default (RS256 and EC
algorithms are accepted by the stand-in); claims `iss` = the integration's client id, `scope` =
"restlets,rest_webservices", `aud` = the token endpoint URL, `iat`, `exp` at most one hour
later. The request is `POST /services/rest/auth/oauth2/v1/token` with
`grant_type=client_credentials`, `client_assertion_type=urn:ietf:params:oauth:client-assertion-
type:jwt-bearer` and `client_assertion=<jwt>`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import jwt

from ..auth import OAuthTokenAuth, Token
from ..errors import AuthError, ResponseShapeError
from ..keys import load_private_key

logger = logging.getLogger(__name__)

TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"
DEFAULT_SCOPE = "restlets,rest_webservices"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SUPPORTED_ALGORITHMS = ("PS256", "PS384", "PS512", "RS256", "ES256", "ES384", "ES512")


class NetSuiteM2MAuth(OAuthTokenAuth):
    """Fetches and caches NetSuite access tokens with a signed client assertion."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        certificate_id: str,
        private_key: str,
        cache_key: str,
        algorithm: str = "PS256",
        scope: str = DEFAULT_SCOPE,
        assertion_lifetime: int = 300,
    ) -> None:
        super().__init__(cache_key)
        if algorithm not in SUPPORTED_ALGORITHMS:
            raise AuthError(f"unsupported JWT algorithm {algorithm!r}", operation="auth.token")
        if not client_id or not certificate_id:
            raise AuthError("client_id and certificate_id are required", operation="auth.token")
        self.token_url = token_url
        self.client_id = client_id
        self.certificate_id = certificate_id
        self.algorithm = algorithm
        self.scope = scope
        self.assertion_lifetime = min(max(assertion_lifetime, 30), 3600)
        try:
            self._key = load_private_key(private_key)
        except (ValueError, TypeError, AttributeError) as exc:
            raise AuthError(
                "the NetSuite private key is not a readable unencrypted PEM key",
                operation="auth.token",
            ) from exc

    def client_assertion(self) -> str:
        """A fresh signed JWT naming the certificate (kid) and the integration (iss)."""
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "scope": self.scope,
            "aud": self.token_url,
            "iat": now,
            "exp": now + self.assertion_lifetime,
        }
        return jwt.encode(
            claims,
            self._key,  # type: ignore[arg-type]
            algorithm=self.algorithm,
            headers={"kid": self.certificate_id, "typ": "JWT"},
        )

    def token_request(self) -> httpx.Request:
        return httpx.Request(
            "POST",
            self.token_url,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.client_assertion(),
            },
            headers={"Accept": "application/json"},
        )

    def read_token(self, response: httpx.Response) -> Token:
        try:
            body: Any = response.json()
        except ValueError as exc:
            raise ResponseShapeError(
                "token endpoint answered with a body that is not JSON",
                status=response.status_code,
                body=response.text[:500],
                operation="auth.token",
            ) from exc
        access = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(access, str) or not access:
            raise ResponseShapeError(
                "token endpoint answered without an access_token",
                status=response.status_code,
                body=_redacted(body),
                operation="auth.token",
            )
        token_type = body.get("token_type", "bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise ResponseShapeError(
                f"unexpected token_type {token_type!r}",
                status=response.status_code,
                body=_redacted(body),
                operation="auth.token",
            )
        # NetSuite has been seen to send expires_in as a string; accept both.
        try:
            expires_in = float(body.get("expires_in", 3600))
        except (TypeError, ValueError):
            expires_in = 3600.0
        logger.debug(
            "netsuite token fetched for %s (expires in %.0f s)", self.cache_key, expires_in
        )
        return Token(access_token=access, expires_at=time.time() + max(expires_in, 0.0))


def _redacted(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: ("***" if "token" in k else v) for k, v in body.items()}
    return str(body)[:500]
