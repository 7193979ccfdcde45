"""Salesforce connector: JWT bearer auth (auth.py), the REST client (client.py), the mapping
to and from canonical shapes (mapping.py) and the signed outbound events (webhooks.py).

`build_client()` is how the Django side turns a stored Connection into a client:
settings = {"username": ..., "login_url": optional (defaults to base_url), "api_version":
optional ("v62.0"), "audience": optional (defaults to login_url), "session_seconds":
optional (900)}; secrets = {"consumer_key": ..., "private_key": PEM}.
"""

from __future__ import annotations

from typing import Any

import httpx

from ..errors import AuthError
from ..http import TelemetrySink
from .auth import DEFAULT_SESSION_SECONDS, SalesforceJWTAuth
from .client import (
    AMENDMENT_FIELDS,
    DEFAULT_API_VERSION,
    OPPORTUNITY_FIELDS,
    SalesforceClient,
    soql_quote,
)
from .mapping import (
    amendment_from_salesforce,
    billing_model_from_salesforce,
    customer_from_salesforce,
    invoice_status_to_salesforce,
    opportunity_from_salesforce,
    opportunity_writeback,
    parse_salesforce_datetime,
)
from .webhooks import parse_event, verify_signature

__all__ = [
    "AMENDMENT_FIELDS",
    "OPPORTUNITY_FIELDS",
    "SalesforceClient",
    "SalesforceJWTAuth",
    "amendment_from_salesforce",
    "billing_model_from_salesforce",
    "build_client",
    "customer_from_salesforce",
    "invoice_status_to_salesforce",
    "opportunity_from_salesforce",
    "opportunity_writeback",
    "parse_event",
    "parse_salesforce_datetime",
    "soql_quote",
    "verify_signature",
]


def build_client(
    *,
    base_url: str,
    settings: dict[str, Any],
    secrets: dict[str, Any],
    connection_id: int | None = None,
    on_call: TelemetrySink | None = None,
    transport: httpx.BaseTransport | None = None,
    **options: Any,
) -> SalesforceClient:
    """A SalesforceClient for one connection; `options` go to ConnectorHttpClient (for
    example `sleep`, `max_attempts`, `backoff_initial`). Missing or unusable credentials raise
    AuthError."""
    settings = settings or {}
    secrets = secrets or {}
    login_url = str(settings.get("login_url") or base_url or "").rstrip("/")
    if not login_url.startswith(("https://", "http://")):
        raise AuthError(
            "a Salesforce connection needs an http(s) login URL", operation="salesforce.config"
        )
    username = settings.get("username")
    consumer_key = secrets.get("consumer_key")
    private_key = secrets.get("private_key")
    missing = [
        name
        for name, value in (
            ("settings.username", username),
            ("secrets.consumer_key", consumer_key),
            ("secrets.private_key", private_key),
        )
        if not isinstance(value, str) or not value.strip()
    ]
    if missing:
        raise AuthError(
            f"the Salesforce connection is missing {', '.join(missing)}",
            operation="salesforce.config",
        )
    auth = SalesforceJWTAuth(
        login_url=login_url,
        consumer_key=str(consumer_key).strip(),
        username=str(username).strip(),
        private_key=str(private_key),
        audience=settings.get("audience") or None,
        session_seconds=float(settings.get("session_seconds") or DEFAULT_SESSION_SECONDS),
        cache_key=f"salesforce:{connection_id}:{login_url}:{str(username).strip()}",
    )
    return SalesforceClient(
        login_url,
        api_version=str(settings.get("api_version") or DEFAULT_API_VERSION),
        auth=auth,
        connection_id=connection_id,
        on_call=on_call,
        transport=transport,
        **options,
    )
