"""Connector health pages: `/dashboards/health/` for people (refreshes itself every 15 s) and
`/metrics` for Prometheus (open to METRICS_ALLOWED_IPS, a METRICS_TOKEN bearer, or a
signed-in user)."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from functools import lru_cache

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from . import health, health_metrics

logger = logging.getLogger(__name__)

#: seconds between two refreshes of the page
REFRESH_SECONDS = 15


@require_GET
@never_cache
@login_required
def health_page(request: HttpRequest) -> HttpResponse:
    """Every enabled connection's health; `?fragment=1` answers only the report's part of the
    page, which the page's script fetches every 15 seconds."""
    window = health.window_of(request.GET.get("window"))
    report = health.build_report(window)
    context = {
        "report": report,
        "windows": [(key, health.WINDOW_LABELS[key]) for key in health.WINDOWS],
        "refresh_seconds": REFRESH_SECONDS,
    }
    if request.GET.get("fragment"):
        response = render(request, "dashboards/_health_report.html", context)
        response["X-Health-Fragment"] = "1"
        return response
    return render(request, "dashboards/health.html", context)


@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Connector health in the Prometheus text format (`?window=1h` or `24h` for longer)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header[:7].lower() == "bearer ":
        token = str(getattr(settings, "METRICS_TOKEN", "") or "")
        if not token or not hmac.compare_digest(header[7:].strip().encode(), token.encode()):
            response = HttpResponse(
                "invalid metrics token\n", status=401, content_type="text/plain"
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    elif not (request.user.is_authenticated or address_allowed(request.META.get("REMOTE_ADDR"))):
        return HttpResponse(
            "metrics are open to METRICS_ALLOWED_IPS or a METRICS_TOKEN bearer\n",
            status=403,
            content_type="text/plain",
        )
    report = health.build_report(health.window_of(request.GET.get("window")))
    return HttpResponse(health_metrics.render(report), content_type=CONTENT_TYPE_PLAIN_0_0_4)


def address_allowed(address: str | None) -> bool:
    """Whether the peer address is one of METRICS_ALLOWED_IPS (addresses or networks)."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _networks(tuple(settings.METRICS_ALLOWED_IPS)))


@lru_cache(maxsize=8)
def _networks(
    entries: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            logger.warning("METRICS_ALLOWED_IPS: %r is not an address or network", entry)
    return tuple(networks)
