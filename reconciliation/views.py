"""Reconciliation pages about definitions: the list (last run, next run, Run now), one
definition's settings form, and its history of runs with the match-rate trend."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import actions, display, overview
from .forms import DefinitionForm
from .models import Acceptance, Definition, Run

#: runs the history page shows (and charts), newest first
HISTORY_RUNS = 100
HISTORY_ACCEPTANCES = 50


@require_GET
@login_required
def definitions_page(request: HttpRequest) -> HttpResponse:
    allowed = actions.can_see_amounts(request.user)
    return render(
        request,
        "reconciliation/definitions.html",
        {
            "rows": overview.definitions(),
            "can_act": actions.can_act(request.user),
            "amounts_shown": allowed,
        },
    )


@require_GET
@login_required
def history_page(request: HttpRequest, pk: int) -> HttpResponse:
    definition = get_object_or_404(
        Definition.objects.select_related("source", "target", "periodic_task__crontab"), pk=pk
    )
    runs = list(
        Run.objects.filter(definition=definition)
        .select_related("requested_by")
        .order_by("-created_at", "-id")[:HISTORY_RUNS]
    )
    allowed = actions.can_see_amounts(request.user)
    for run in runs:
        run.at_risk_totals = display.at_risk_totals(run)
    acceptances = (
        Acceptance.objects.filter(definition=definition)
        .select_related("accepted_by")
        .order_by("-accepted_at")[:HISTORY_ACCEPTANCES]
    )
    return render(
        request,
        "reconciliation/history.html",
        {
            "status": overview.status_of(definition),
            "definition": definition,
            "runs": runs,
            "chart": display.match_rate_chart(runs),
            "acceptances": acceptances,
            "can_act": actions.can_act(request.user),
            "amounts_shown": allowed,
            "shown_runs": HISTORY_RUNS,
        },
    )


@require_http_methods(["GET", "POST"])
@login_required
def edit_definition(request: HttpRequest, pk: int) -> HttpResponse:
    definition = get_object_or_404(Definition.objects.select_related("source", "target"), pk=pk)
    if not actions.can_act(request.user):
        raise PermissionDenied(actions.REFUSAL)
    form = DefinitionForm(request.POST or None, instance=definition)
    if request.method == "POST" and form.is_valid():
        changes = {name: form.cleaned_data[name] for name in actions.EDITABLE}
        # the form changed the instance in place while validating: start from the stored one
        stored = Definition.objects.get(pk=definition.pk)
        try:
            changed = actions.update_definition(stored, request.user, changes)
        except actions.ActionRefused as refused:
            messages.error(request, str(refused))
        else:
            if changed:
                messages.success(request, f"Saved {definition.name}: {', '.join(changed)}.")
            else:
                messages.info(request, "Nothing changed.")
            return redirect("reconciliation:history", pk=definition.pk)
    return render(
        request,
        "reconciliation/definition_form.html",
        {"definition": definition, "form": form, "status": overview.status_of(definition)},
    )


@require_POST
@login_required
def run_now(request: HttpRequest, pk: int) -> HttpResponse:
    definition = get_object_or_404(Definition, pk=pk)
    full = request.POST.get("mode") == Run.Mode.FULL
    try:
        run = actions.start_run(definition, request.user, full=full)
    except actions.NotAllowed as refused:
        raise PermissionDenied(str(refused)) from refused
    except actions.ActionRefused as refused:
        messages.error(request, str(refused))
        return redirect("reconciliation:definitions")
    messages.success(
        request, f"{run.get_mode_display()} run #{run.pk} of {definition.name} queued."
    )
    return redirect("reconciliation:run-detail", pk=run.pk)
