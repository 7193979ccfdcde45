"""Kantata OX (formerly Mavenlink) connector: the PSA where Throughline provisions projects
(workspaces) and their milestones (stories). See `client` for the API facts and how replays
stay idempotent, `mapping` for the canonical shapes."""

from __future__ import annotations

from typing import Any

import httpx

from ..errors import AuthError
from ..http import TelemetrySink
from .client import DEFAULT_BASE_URL, SERVICE_NAME, KantataClient, unpack_envelope

__all__ = ["DEFAULT_BASE_URL", "SERVICE_NAME", "KantataClient", "build_client", "unpack_envelope"]


def build_client(
    *,
    base_url: str,
    settings: dict[str, Any],
    secrets: dict[str, Any],
    connection_id: int | None = None,
    on_call: TelemetrySink | None = None,
    transport: httpx.BaseTransport | None = None,
    **options: Any,
) -> KantataClient:
    """A Kantata client for a stored Connection: secrets `access_token` (an OAuth 2.0 bearer
    token; Kantata's do not expire); optional settings `timeout` (seconds) and `page_size`
    (1-200). An empty base_url means https://api.mavenlink.com. `options` go to KantataClient
    (retry policy: `max_attempts`, `backoff_initial`, `backoff_max`, `sleep`)."""
    token = (secrets or {}).get("access_token")
    if not isinstance(token, str) or not token.strip():
        raise AuthError(
            "The Kantata connection has no access_token secret",
            vendor_code="missing_credentials",
            operation="kantata.build_client",
        )
    settings = settings or {}
    if settings.get("timeout") not in (None, ""):
        options["timeout"] = float(settings["timeout"])
    if settings.get("page_size") not in (None, ""):
        options["page_size"] = int(settings["page_size"])
    return KantataClient(
        base_url or DEFAULT_BASE_URL,
        token=token.strip(),
        connection_id=connection_id,
        on_call=on_call,
        transport=transport,
        **options,
    )
