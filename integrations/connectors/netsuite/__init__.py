"""The NetSuite connector: SuiteTalk REST web services with OAuth 2.0 M2M auth.

`build_client` is how the Django side builds a client from a stored Connection:
settings `account_id` (required; e.g. "TSTDRV1234567" or "1234567_SB1"), optional
`algorithm` (PS256) and `scope`; secrets `client_id`, `certificate_id` and `private_key` (PEM).
When `base_url` is empty it is derived from the account id
(https://<account>.suitetalk.api.netsuite.com), and RESTlets are called on the account's
RESTlet domain (https://<account>.restlets.api.netsuite.com); with an explicit `base_url` (a
stand-in) RESTlets are called on that host. Optional settings `restlet_base_url`,
`bulk_script`, `bulk_deploy` and `batch_size` override the bulk RESTlet's address and batch.
Tokens are cached per connection and account. Several NetSuite accounts (a legacy ERP beside
the new one) are several connections, each with its own account id, token and base URL.
"""

from __future__ import annotations

from typing import Any

import httpx

from ..errors import AuthError
from ..http import TelemetrySink
from .auth import DEFAULT_SCOPE, TOKEN_PATH, NetSuiteM2MAuth
from .client import RESTLET_PATH, IdempotencyConflictError, NetSuiteClient

__all__ = [
    "IdempotencyConflictError",
    "NetSuiteClient",
    "NetSuiteM2MAuth",
    "account_base_url",
    "account_restlet_url",
    "build_client",
]


def account_base_url(account_id: str) -> str:
    """The account-specific REST domain: lower case, '_' becomes '-'."""
    host = account_id.strip().lower().replace("_", "-")
    return f"https://{host}.suitetalk.api.netsuite.com"


def account_restlet_url(account_id: str) -> str:
    """The account-specific RESTlet domain (restlets.api.netsuite.com)."""
    host = account_id.strip().lower().replace("_", "-")
    return f"https://{host}.restlets.api.netsuite.com"


def build_client(
    *,
    base_url: str,
    settings: dict[str, Any],
    secrets: dict[str, Any],
    connection_id: int | None = None,
    on_call: TelemetrySink | None = None,
    transport: httpx.BaseTransport | None = None,
    **options: Any,
) -> NetSuiteClient:
    """A NetSuiteClient for one stored connection; `options` go to NetSuiteClient."""
    account_id = str(settings.get("account_id") or "").strip()
    missing = [k for k in ("client_id", "certificate_id", "private_key") if not secrets.get(k)]
    if not account_id:
        missing.insert(0, "settings.account_id")
    if missing:
        raise AuthError(
            f"the NetSuite connection is missing {', '.join(missing)}", operation="auth.token"
        )
    base = (base_url or account_base_url(account_id)).rstrip("/")
    auth = NetSuiteM2MAuth(
        token_url=f"{base}{TOKEN_PATH}",
        client_id=str(secrets["client_id"]),
        certificate_id=str(secrets["certificate_id"]),
        private_key=str(secrets["private_key"]),
        cache_key=f"netsuite:{connection_id}:{account_id}:{secrets['client_id']}",
        algorithm=str(settings.get("algorithm") or "PS256"),
        scope=str(settings.get("scope") or DEFAULT_SCOPE),
    )
    restlet_base = str(settings.get("restlet_base_url") or "").rstrip("/")
    if not restlet_base and not base_url:
        restlet_base = account_restlet_url(account_id)
    for key in ("bulk_script", "bulk_deploy"):
        if settings.get(key):
            options.setdefault(key, str(settings[key]))
    if settings.get("batch_size"):
        options.setdefault("batch_size", int(settings["batch_size"]))
    return NetSuiteClient(
        base,
        restlet_url=f"{restlet_base}{RESTLET_PATH}" if restlet_base else None,
        auth=auth,
        connection_id=connection_id,
        on_call=on_call,
        transport=transport,
        **options,
    )
