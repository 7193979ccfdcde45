"""The leadership page, `/dashboards/leadership/`: backlog, billed, earned revenue, project
margin and margin variance per legal entity and currency over a period, as a chart per
currency (Chart.js served from static/) with the table beside it and its CSV export.

The figures come from dashboards.leadership (the KPI machinery); the period is chosen as on
the KPI pages (dashboards.kpi_views.page_query: 7, 30 or 90 days, or `from`/`to`), and the
CSV and JSON links are the API's (`/api/v1/leadership/`) with the same period.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from . import kpi_queries, leadership
from .kpi_views import PERIODS, page_query


def _cells(rows: list[leadership.Row], result: leadership.Leadership) -> list[dict[str, Any]]:
    """Each row with its (column, cell) pairs in the table's order."""
    return [{"row": r, "cells": [(c, r.cells[c.key]) for c in result.columns]} for r in rows]


@require_GET
@login_required
def leadership_page(request: HttpRequest) -> HttpResponse:
    """One consistent set of figures per legal entity and currency."""
    query = page_query(request)
    result = leadership.build(
        query.start, query.end, sees_money=kpi_queries.can_see_money(request.user)
    )
    api_params = {"from": query.start.isoformat(), "to": query.end.isoformat()}
    api_url = reverse("dashboards:api-leadership")
    return render(
        request,
        "dashboards/leadership.html",
        {
            "query": query,
            "result": result,
            "rows": _cells(result.rows, result),
            "totals": _cells(result.totals, result),
            "live_columns": [c for c in result.columns if c.live],
            "waiting_columns": [c for c in result.columns if not c.live],
            "chart_data": leadership.chart(result),
            "periods": [(key, label) for key, (_, label) in PERIODS.items()],
            "csv_url": api_url + "?" + urlencode({**api_params, "format": "csv"}),
            "json_url": api_url + "?" + urlencode(api_params),
        },
    )
