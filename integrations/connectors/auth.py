"""Pluggable httpx auth for connectors: static bearer tokens, and OAuth token grants that are
fetched on first use, cached per connection for the whole worker process, refreshed before
expiry and once more when the vendor answers 401.

A vendor subclasses `OAuthTokenAuth` and says how to build its token request and how to read
the answer; the token request travels through the same httpx client (auth flows may yield
extra requests), so stand-ins and transports used in tests see it too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import httpx

from .errors import AuthError, RateLimitedError, TransientError
from .http import parse_retry_after


class BearerTokenAuth(httpx.Auth):
    """A long-lived token sent as `Authorization: Bearer` (HubSpot private apps, Kantata)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


@dataclass
class Token:
    """An access token and what came with it (Salesforce sends `instance_url`)."""

    access_token: str
    expires_at: float
    extra: dict[str, Any] = field(default_factory=dict)

    def fresh(self, margin: float = 30.0) -> bool:
        return time.time() < self.expires_at - margin


class OAuthTokenAuth(httpx.Auth):
    """Fetches, caches and refreshes an OAuth access token.

    Subclasses implement `token_request()` and `read_token(response)`; they may override
    `apply(request, token)` to do more than set the bearer header.
    """

    requires_response_body = True
    _cache: dict[str, Token] = {}
    _lock = threading.Lock()

    def __init__(self, cache_key: str) -> None:
        self.cache_key = cache_key

    # -- vendor hooks -------------------------------------------------------------------
    def token_request(self) -> httpx.Request:
        raise NotImplementedError

    def read_token(self, response: httpx.Response) -> Token:
        raise NotImplementedError

    def apply(self, request: httpx.Request, token: Token) -> None:
        request.headers["Authorization"] = f"Bearer {token.access_token}"

    # -- flow ---------------------------------------------------------------------------
    @classmethod
    def forget(cls, cache_key: str | None = None) -> None:
        """Drop cached tokens (one connection's, or all): the next call fetches anew."""
        with cls._lock:
            if cache_key is None:
                cls._cache.clear()
            else:
                cls._cache.pop(cache_key, None)

    def cached(self) -> Token | None:
        with self._lock:
            token = self._cache.get(self.cache_key)
        return token if token and token.fresh() else None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.cached()
        if token is None:
            token = yield from self._fetch()
        self.apply(request, token)
        response = yield request
        if response.status_code == 401:
            self.forget(self.cache_key)
            token = yield from self._fetch()
            self.apply(request, token)
            yield request

    def _fetch(self) -> Generator[httpx.Request, httpx.Response, Token]:
        response = yield self.token_request()
        if response.status_code == 429:
            raise RateLimitedError(
                "token endpoint rate limited",
                status=429,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                operation="auth.token",
            )
        if response.status_code >= 500:
            raise TransientError(
                "token endpoint unavailable", status=response.status_code, operation="auth.token"
            )
        if not response.is_success:
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text[:500]
            message = body.get("error_description") if isinstance(body, dict) else None
            raise AuthError(
                message or f"token request refused ({response.status_code})",
                status=response.status_code,
                vendor_code=body.get("error") if isinstance(body, dict) else None,
                body=body,
                operation="auth.token",
            )
        token = self.read_token(response)
        with self._lock:
            self._cache[self.cache_key] = token
        return token
