"""The reporting extracts page: `/reporting/extracts/`."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from . import services
from .models import Extract
from .permissions import can_manage_extracts


@require_GET
@login_required
def extracts_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "reporting/extracts.html",
        {"rows": services.statuses(), "can_manage": can_manage_extracts(request.user)},
    )


@require_POST
@login_required
def run_now(request: HttpRequest, pk: int) -> HttpResponse:
    if not can_manage_extracts(request.user):
        raise PermissionDenied("Only superusers and admins of an IT team may run extracts.")
    extract = get_object_or_404(Extract, pk=pk)
    services.request_run(extract, request.user)
    messages.success(request, f"Extract {extract.name} queued to run now.")
    return redirect("reporting:extracts")
