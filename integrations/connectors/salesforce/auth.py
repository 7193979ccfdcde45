"""Salesforce OAuth 2.0 JWT bearer flow: sign an assertion, trade it for an access token, and
send every API call to the `instance_url` that came with the token.

Facts (Salesforce help "OAuth 2.0 JWT Bearer Flow for Server-to-Server Integration", and the
answers quoted on salesforce.stackexchange):
* `POST {login_url}/services/oauth2/token` with `grant_type=urn:ietf:params:oauth:grant-type:
  jwt-bearer` and `assertion` = an RS256 JWT: iss = the connected app's consumer key, sub =
  the username, aud = https://login.salesforce.com or https://test.salesforce.com (or an
  Experience Cloud site URL), exp a few minutes ahead (about 3).
* The answer: `{access_token, scope, instance_url, id, token_type: "Bearer", issued_at,
  signature}` - no `expires_in`: the session lasts the org's session timeout (15 minutes to
  24 hours), so the token is kept for `session_seconds` (default 15 minutes, the shortest
  setting) and renewed on the first 401 anyway (OAuthTokenAuth does that).
* Failures answer 400 `{"error", "error_description"}`, e.g. `invalid_grant` / "audience is
  invalid" or "user hasn't approved this consumer"; `invalid_client_id` for an unknown
  consumer key. They become AuthError (OAuthTokenAuth._fetch).
* There is no refresh token in this flow: renewing means signing a new assertion.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from ..auth import OAuthTokenAuth, Token
from ..errors import AuthError, ResponseShapeError
from ..keys import load_private_key as parse_private_key

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: how far ahead the assertion expires (Salesforce asks for about 3 minutes at most)
ASSERTION_LIFETIME = 170
DEFAULT_SESSION_SECONDS = 900.0


def load_private_key(pem: str | bytes) -> RSAPrivateKey:
    """Load an unencrypted PEM RSA private key, or raise AuthError saying what is wrong."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = parse_private_key(data)
    except (ValueError, TypeError) as exc:
        raise AuthError(
            "the Salesforce private key is not an unencrypted PEM private key",
            operation="salesforce.auth.key",
        ) from exc
    if not isinstance(key, RSAPrivateKey):
        raise AuthError(
            "the Salesforce private key must be an RSA key (RS256)",
            operation="salesforce.auth.key",
        )
    return key


class SalesforceJWTAuth(OAuthTokenAuth):
    """JWT bearer auth for Salesforce; requests are re-pointed at the token's instance_url.

    The httpx client's base URL is the login URL; `apply()` rewrites each API request's
    scheme, host and port to the `instance_url` of the current token.
    """

    def __init__(
        self,
        *,
        login_url: str,
        consumer_key: str,
        username: str,
        private_key: str | bytes | RSAPrivateKey,
        cache_key: str,
        audience: str | None = None,
        session_seconds: float = DEFAULT_SESSION_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(cache_key)
        if not consumer_key or not username:
            raise AuthError(
                "a Salesforce connection needs a consumer key and a username",
                operation="salesforce.auth.config",
            )
        self.login_url = login_url.rstrip("/")
        self.consumer_key = consumer_key
        self.username = username
        self.audience = (audience or self.login_url).rstrip("/")
        self.session_seconds = session_seconds
        self._clock = clock
        self._key = (
            private_key if isinstance(private_key, RSAPrivateKey) else load_private_key(private_key)
        )

    @property
    def token_url(self) -> str:
        return f"{self.login_url}/services/oauth2/token"

    def assertion(self) -> str:
        """A freshly signed RS256 JWT for the token request."""
        now = int(self._clock())
        claims = {
            "iss": self.consumer_key,
            "sub": self.username,
            "aud": self.audience,
            "exp": now + ASSERTION_LIFETIME,
        }
        return jwt.encode(claims, self._key, algorithm="RS256")

    # -- OAuthTokenAuth hooks -----------------------------------------------------------
    def token_request(self) -> httpx.Request:
        return httpx.Request(
            "POST",
            self.token_url,
            data={"grant_type": JWT_BEARER_GRANT, "assertion": self.assertion()},
            headers={"Accept": "application/json"},
        )

    def read_token(self, response: httpx.Response) -> Token:
        try:
            body: Any = response.json()
        except ValueError as exc:
            raise ResponseShapeError(
                "Salesforce token answer is not JSON",
                status=response.status_code,
                body=response.text[:500],
                operation="salesforce.auth.token",
            ) from exc
        if not isinstance(body, dict):
            raise self._shape_error("is not a JSON object", response)
        access_token = body.get("access_token")
        instance_url = body.get("instance_url")
        if not isinstance(access_token, str) or not access_token:
            raise self._shape_error("has no access_token", response)
        if not isinstance(instance_url, str) or not self._acceptable_instance(instance_url):
            raise self._shape_error("has no usable instance_url", response)
        extra = {
            key: body[key]
            for key in ("id", "issued_at", "scope", "token_type")
            if isinstance(body.get(key), str)
        }
        extra["instance_url"] = instance_url.rstrip("/")
        return Token(
            access_token=access_token,
            expires_at=self._clock() + self.session_seconds,
            extra=extra,
        )

    def apply(self, request: httpx.Request, token: Token) -> None:
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        instance = httpx.URL(token.extra["instance_url"])
        request.url = request.url.copy_with(
            scheme=instance.scheme, host=instance.host, port=instance.port
        )
        request.headers["Host"] = (
            instance.host if instance.port is None else f"{instance.host}:{instance.port}"
        )

    # -- helpers --------------------------------------------------------------------------
    def _acceptable_instance(self, value: str) -> bool:
        """An absolute http(s) URL; https whenever the login URL is https (no token leaks)."""
        try:
            url = httpx.URL(value)
        except (httpx.InvalidURL, TypeError):
            return False
        if url.scheme not in ("http", "https") or not url.host:
            return False
        return not (httpx.URL(self.login_url).scheme == "https" and url.scheme != "https")

    def _shape_error(self, problem: str, response: httpx.Response) -> ResponseShapeError:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text[:500]
        if isinstance(body, dict):
            hidden = ("access_token", "signature")
            body = {k: ("***" if k in hidden else v) for k, v in body.items()}
        return ResponseShapeError(
            f"Salesforce token answer {problem}",
            status=response.status_code,
            body=body,
            operation="salesforce.auth.token",
        )
