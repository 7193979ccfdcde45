"""ERP coexistence routing: the ERP connection that receives a kind of financial record for a
legal entity on a date. Without a route, the primary ERP (the oldest enabled one) receives it.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from .choices import SystemKind
from .models import Connection, ErpRoute


def erp_for(legal_entity_code: str, document: str, on: dt.date | None = None) -> Connection:
    """The route in force on `on` (the latest start not after it), else the primary ERP."""
    on = on or timezone.now().date()
    route = (
        ErpRoute.objects.select_related("connection")
        .filter(
            legal_entity__code=legal_entity_code,
            document=document,
            effective_from__lte=on,
            connection__enabled=True,
        )
        .order_by("-effective_from")
        .first()
    )
    if route is not None:
        return route.connection
    from .workflows.base import primary_connection

    return primary_connection(SystemKind.ERP)
