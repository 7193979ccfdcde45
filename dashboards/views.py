"""Dashboard pages: the business-transaction trace (KPIs and health arrive with their issue)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from .trace import build_trace


@login_required
def trace(request: HttpRequest, business_key: str) -> HttpResponse:
    result = build_trace(business_key)
    if not result.runs and not result.entries:
        raise Http404("No business transaction with that key")
    return render(request, "dashboards/trace.html", {"trace": result})
