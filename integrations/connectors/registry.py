"""Build a vendor client from a stored Connection: the one place that maps a vendor name to
its connector package."""

from __future__ import annotations

import importlib
from typing import Any

import httpx
from django.conf import settings as django_settings

from integrations.choices import Vendor

from .http import ConnectorHttpClient, TelemetrySink

PACKAGES = {
    Vendor.SALESFORCE: "integrations.connectors.salesforce",
    Vendor.NETSUITE: "integrations.connectors.netsuite",
    Vendor.KANTATA: "integrations.connectors.kantata",
}


def build_client(
    connection: Any,
    *,
    on_call: TelemetrySink | None = None,
    transport: httpx.BaseTransport | None = None,
) -> ConnectorHttpClient:
    """A ready client for `connection` (an integrations.models.Connection)."""
    package = importlib.import_module(PACKAGES[Vendor(connection.vendor)])
    retry_policy = dict(getattr(django_settings, "CONNECTOR_RETRY", {}))
    return package.build_client(
        base_url=connection.base_url,
        settings=dict(connection.settings or {}),
        secrets=connection.secrets,
        connection_id=connection.pk,
        on_call=on_call,
        transport=transport,
        **retry_policy,
    )
