"""Bearer and OAuth auth for connectors, through ConnectorHttpClient and httpx.MockTransport."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from integrations.connectors.auth import BearerTokenAuth, OAuthTokenAuth, Token
from integrations.connectors.errors import AuthError, RateLimitedError, TransientError
from integrations.connectors.http import ConnectorHttpClient

TOKEN_URL = "https://login.vendor.test/oauth/token"


class ClientCredentials(OAuthTokenAuth):
    """A minimal vendor grant: POST client credentials, read `access_token`/`expires_in`."""

    def token_request(self) -> httpx.Request:
        return httpx.Request(
            "POST", TOKEN_URL, data={"grant_type": "client_credentials", "client_id": "abc"}
        )

    def read_token(self, response: httpx.Response) -> Token:
        body = response.json()
        return Token(
            body["access_token"],
            time.time() + body.get("expires_in", 3600),
            extra={"instance_url": body.get("instance_url")},
        )


class Vendor:
    """A token endpoint issuing tok-1, tok-2, ... and an API accepting the `valid` tokens."""

    def __init__(self, *, expires_in=3600, token_answers=None, api_answers=None):
        self.expires_in = expires_in
        self.token_answers = list(token_answers or [])  # overrides for the token endpoint
        self.api_answers = list(api_answers or [])  # overrides for the API
        self.issued = 0
        self.valid: set[str] = set()
        self.token_requests: list[httpx.Request] = []
        self.api_requests: list[httpx.Request] = []
        self.api_auth: list[str] = []  # as sent (a replayed request is the same object)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            self.token_requests.append(request)
            if self.token_answers:
                return self.token_answers.pop(0)
            self.issued += 1
            token = f"tok-{self.issued}"
            self.valid.add(token)
            return httpx.Response(
                200,
                json={
                    "access_token": token,
                    "expires_in": self.expires_in,
                    "instance_url": "https://eu1.vendor.test",
                },
            )
        self.api_requests.append(request)
        self.api_auth.append(request.headers.get("Authorization", ""))
        if self.api_answers:
            return self.api_answers.pop(0)
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") in self.valid:
            return httpx.Response(200, json={"ok": True, "body": request.content.decode()})
        return httpx.Response(401, json={"message": "Session expired or invalid"})


@pytest.fixture(autouse=True)
def _clean_token_cache():
    OAuthTokenAuth.forget()
    yield
    OAuthTokenAuth.forget()


def client_for(vendor, auth, **kw):
    kw.setdefault("sleep", lambda s: None)
    return ConnectorHttpClient(
        "https://api.vendor.test", auth=auth, transport=httpx.MockTransport(vendor), **kw
    )


def test_bearer_token_auth_sets_header():
    seen = []

    def handler(request):
        seen.append(request.headers["Authorization"])
        return httpx.Response(200, json={})

    client = client_for(handler, BearerTokenAuth("pat-123"))
    client.request("GET", "/a", operation="op")
    client.request("POST", "/b", operation="op", json={})
    assert seen == ["Bearer pat-123", "Bearer pat-123"]


def test_token_fetched_once_and_shared_by_clients_with_same_cache_key():
    vendor = Vendor()
    first = client_for(vendor, ClientCredentials("conn-1"))
    second = client_for(vendor, ClientCredentials("conn-1"))
    first.request("GET", "/a", operation="op")
    first.request("GET", "/b", operation="op")
    second.request("GET", "/c", operation="op")
    assert len(vendor.token_requests) == 1
    assert vendor.api_auth == ["Bearer tok-1"] * 3
    token_request = vendor.token_requests[0]
    assert token_request.method == "POST"
    assert b"grant_type=client_credentials" in token_request.content
    assert ClientCredentials("conn-1").cached().extra["instance_url"] == "https://eu1.vendor.test"


def test_different_cache_keys_get_their_own_tokens():
    vendor = Vendor()
    client_for(vendor, ClientCredentials("conn-1")).request("GET", "/a", operation="op")
    client_for(vendor, ClientCredentials("conn-2")).request("GET", "/a", operation="op")
    assert len(vendor.token_requests) == 2
    assert vendor.api_auth == ["Bearer tok-1", "Bearer tok-2"]


def test_token_near_expiry_is_fetched_anew():
    vendor = Vendor(expires_in=10)  # inside the 30 s safety margin
    client = client_for(vendor, ClientCredentials("conn-1"))
    client.request("GET", "/a", operation="op")
    client.request("GET", "/a", operation="op")
    assert len(vendor.token_requests) == 2


def test_token_fresh_margin():
    now = time.time()
    assert Token("t", now + 120).fresh()
    assert not Token("t", now + 20).fresh()
    assert Token("t", now + 20).fresh(margin=10)
    assert not Token("t", now - 1).fresh(margin=0)


def test_401_refreshes_token_once_and_replays_the_request_with_its_body():
    vendor = Vendor()
    auth = ClientCredentials("conn-1")
    client = client_for(vendor, auth)
    client.request("GET", "/warm", operation="op")  # caches tok-1
    vendor.valid.clear()  # the vendor revokes it

    response = client.request("POST", "/things", operation="op", json={"name": "Acme"})

    assert response.status_code == 200
    assert json.loads(response.json()["body"]) == {"name": "Acme"}
    assert len(vendor.token_requests) == 2
    assert vendor.api_auth[1:] == [
        "Bearer tok-1",
        "Bearer tok-2",
    ]
    assert auth.cached().access_token == "tok-2"


def test_second_401_after_refresh_is_an_auth_error_not_a_loop():
    vendor = Vendor(api_answers=[httpx.Response(401), httpx.Response(401), httpx.Response(200)])
    client = client_for(vendor, ClientCredentials("conn-1"))
    with pytest.raises(AuthError) as excinfo:
        client.request("GET", "/a", operation="vendor.read")
    assert excinfo.value.status == 401
    assert len(vendor.api_requests) == 2
    assert len(vendor.token_requests) == 2


def test_token_endpoint_4xx_is_auth_error_with_description_and_not_retried():
    refused = httpx.Response(
        400, json={"error": "invalid_grant", "error_description": "user hasn't approved"}
    )
    vendor = Vendor(token_answers=[refused])
    client = client_for(vendor, ClientCredentials("conn-1"))
    with pytest.raises(AuthError) as excinfo:
        client.request("GET", "/a", operation="op")
    err = excinfo.value
    assert err.message == "user hasn't approved"
    assert err.vendor_code == "invalid_grant"
    assert err.status == 400
    assert err.operation == "auth.token"
    assert err.body["error"] == "invalid_grant"
    assert not err.retryable
    assert len(vendor.token_requests) == 1
    assert vendor.api_requests == []
    assert ClientCredentials("conn-1").cached() is None


def test_token_endpoint_4xx_without_json_has_a_readable_message():
    vendor = Vendor(token_answers=[httpx.Response(401, text="<html>denied</html>")])
    client = client_for(vendor, ClientCredentials("conn-1"))
    with pytest.raises(AuthError, match=r"token request refused \(401\)") as excinfo:
        client.request("GET", "/a", operation="op")
    assert excinfo.value.body == "<html>denied</html>"
    assert excinfo.value.vendor_code is None


def test_token_endpoint_5xx_is_transient_and_retried():
    vendor = Vendor(token_answers=[httpx.Response(503)])
    client = client_for(vendor, ClientCredentials("conn-1"))
    assert client.request("GET", "/a", operation="op").status_code == 200
    assert len(vendor.token_requests) == 2

    OAuthTokenAuth.forget()
    down = Vendor(token_answers=[httpx.Response(500)] * 5)
    client = client_for(down, ClientCredentials("conn-1"), max_attempts=2)
    with pytest.raises(TransientError) as excinfo:
        client.request("GET", "/a", operation="op")
    assert excinfo.value.status == 500
    assert excinfo.value.operation == "auth.token"
    assert len(down.token_requests) == 2
    assert down.api_requests == []


def test_token_endpoint_429_is_rate_limited_with_retry_after():
    limited = httpx.Response(429, headers={"Retry-After": "9"})
    vendor = Vendor(token_answers=[limited])
    waits = []
    client = client_for(vendor, ClientCredentials("conn-1"), sleep=waits.append)
    assert client.request("POST", "/a", operation="op", json={}).status_code == 200
    assert waits == [9.0]

    OAuthTokenAuth.forget()
    vendor = Vendor(token_answers=[limited])
    client = client_for(vendor, ClientCredentials("conn-1"), max_attempts=1)
    with pytest.raises(RateLimitedError) as excinfo:
        client.request("GET", "/a", operation="op")
    assert excinfo.value.retry_after == 9.0


def test_forget_one_key_or_all():
    vendor = Vendor()
    for key in ("conn-1", "conn-2"):
        client_for(vendor, ClientCredentials(key)).request("GET", "/a", operation="op")
    assert ClientCredentials("conn-1").cached() is not None

    OAuthTokenAuth.forget("conn-1")
    assert ClientCredentials("conn-1").cached() is None
    assert ClientCredentials("conn-2").cached() is not None
    OAuthTokenAuth.forget("never-seen")  # no error

    client_for(vendor, ClientCredentials("conn-1")).request("GET", "/a", operation="op")
    assert len(vendor.token_requests) == 3

    OAuthTokenAuth.forget()
    assert ClientCredentials("conn-1").cached() is None
    assert ClientCredentials("conn-2").cached() is None


def test_apply_override_controls_how_the_token_is_sent():
    class HeaderTokenAuth(ClientCredentials):
        def apply(self, request, token):
            request.headers["X-Api-Token"] = token.access_token

    seen = []

    def handler(request):
        if str(request.url) == TOKEN_URL:
            return httpx.Response(200, json={"access_token": "abc"})
        seen.append(dict(request.headers))
        return httpx.Response(200, json={})

    client_for(handler, HeaderTokenAuth("conn-1")).request("GET", "/a", operation="op")
    assert seen[0]["x-api-token"] == "abc"
    assert "authorization" not in seen[0]


def test_base_class_hooks_must_be_implemented():
    auth = OAuthTokenAuth("conn-1")
    with pytest.raises(NotImplementedError):
        auth.token_request()
    with pytest.raises(NotImplementedError):
        auth.read_token(httpx.Response(200))
