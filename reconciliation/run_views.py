"""Reconciliation pages about one run: its progress while it works (polled by htmx), then its
summary, amount at risk by legal entity, the differences (filtered, keyset-paged) with the
actions on the selected ones, the CSV export, and one difference in full."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from exceptions.saved_views import normalise_query

from . import actions, catalogue, display, export
from .filtersets import DifferenceFilterSet
from .forms import DifferenceActionForm
from .models import IN_PROGRESS, Difference, Run
from .pagination import CURSOR_PARAM, InvalidCursor, paginate

#: refusals listed one by one after an action (the rest counted)
SHOWN_REFUSALS = 10


def _run(pk: int) -> Run:
    return get_object_or_404(
        Run.objects.select_related("definition__source", "definition__target", "requested_by"),
        pk=pk,
    )


def progress_step(run: Run) -> int:
    """Where the run is, 0 (queued) to 4 (finished): the progress bar's value."""
    if run.status in (Run.Status.DONE, Run.Status.FAILED):
        return 4
    if run.status == Run.Status.COMPARING:
        return 3
    if run.status == Run.Status.PULLING:
        return 2 if run.phase.startswith("pulling target") else 1
    return 0


def _progress_context(run: Run) -> dict[str, Any]:
    return {"run": run, "in_progress": run.status in IN_PROGRESS, "step": progress_step(run)}


def _differences(request: HttpRequest, run: Run) -> DifferenceFilterSet:
    legal_entities = sorted(
        {row.get("legal_entity") for row in run.at_risk or [] if row.get("legal_entity")}
        | set(
            Difference.objects.filter(run=run)
            .exclude(legal_entity="")
            .values_list("legal_entity", flat=True)
            .distinct()
        )
    )
    return DifferenceFilterSet(
        request.GET,
        queryset=Difference.objects.filter(run=run).select_related(
            "run__definition", "acceptance", "exception"
        ),
        legal_entities=legal_entities,
    )


@require_GET
@login_required
def run_page(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run(pk)
    user = request.user
    allowed = actions.can_see_amounts(user)
    context: dict[str, Any] = {
        **_progress_context(run),
        "definition": run.definition,
        "comparison": catalogue.get(run.definition.kind),
        "can_act": actions.can_act(user),
        "amounts_shown": allowed,
    }
    if run.status == Run.Status.DONE:
        filterset = _differences(request, run)
        queryset = filterset.qs if filterset.is_valid() else filterset.queryset.none()
        try:
            page = paginate(queryset, request.GET.get(CURSOR_PARAM))
        except InvalidCursor as invalid:
            messages.warning(request, str(invalid))
            page = paginate(queryset, None)
        for diff in page.rows:
            diff.what_differs = display.field_differences(diff, allowed)
            diff.at_risk_shown = display.shown(diff.amount_at_risk, allowed)
        query = normalise_query(request.GET)
        export_url = reverse("reconciliation:run-export", args=[run.pk])
        context.update(
            filter_form=filterset.form,
            page=page,
            differences=page.rows,
            export_url=f"{export_url}?{query}" if query else export_url,
            risk_rows=display.at_risk_rows(run, allowed),
            risk_chart=display.at_risk_chart(run) if allowed else None,
            counts=[
                ("Matched", run.matched, ""),
                ("Missing in target", run.missing_in_target, "missing_in_target"),
                ("Missing in source", run.missing_in_source, "missing_in_source"),
                ("Field mismatch", run.field_mismatch, "field_mismatch"),
                ("Duplicate", run.duplicate, "duplicate"),
            ],
        )
    return render(request, "reconciliation/run.html", context)


@require_GET
@login_required
def run_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress fragment htmx polls; once the run has finished, the page reloads itself
    (HX-Refresh) to show the summary, and the fragment stops polling."""
    run = _run(pk)
    response = render(request, "reconciliation/_run_progress.html", _progress_context(run))
    if run.status not in IN_PROGRESS and request.headers.get("HX-Request"):
        response["HX-Refresh"] = "true"
    return response


@require_GET
@login_required
def run_export(request: HttpRequest, pk: int) -> StreamingHttpResponse | HttpResponse:
    """The run's differences matching the page's filters, as CSV (streamed)."""
    run = _run(pk)
    filterset = _differences(request, run)
    if not filterset.is_valid():
        messages.error(request, "The filters are not valid; nothing exported.")
        return HttpResponseRedirect(reverse("reconciliation:run-detail", args=[run.pk]))
    return export.audited_csv_response(
        filterset.qs,
        request.user,
        run=run,
        query=normalise_query(request.GET),
        base_url=request.build_absolute_uri("/"),
    )


def _back(request: HttpRequest, target: str, fallback: str) -> HttpResponseRedirect:
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = fallback
    return HttpResponseRedirect(target or fallback)


def report(request: HttpRequest, action: str, outcomes: list[actions.Outcome]) -> None:
    """Say what an action did: the successes counted, each refusal with its reason."""
    done = [o for o in outcomes if o.ok]
    refused = [o for o in outcomes if not o.ok]
    verbs = {
        "resync": "queued for re-sync",
        "open_exception": "sent to an exception queue",
        "accept": "accepted",
    }
    if done:
        n = len(done)
        messages.success(request, f"{n} difference{'s' if n != 1 else ''} {verbs[action]}.")
        if action != "accept":
            for outcome in done[:SHOWN_REFUSALS]:
                messages.info(request, f"{outcome.difference.key}: {outcome.message}")
    for outcome in refused[:SHOWN_REFUSALS]:
        messages.error(request, f"{outcome.difference.key}: {outcome.message}")
    if len(refused) > SHOWN_REFUSALS:
        messages.error(request, f"… and {len(refused) - SHOWN_REFUSALS} more not done.")


@require_POST
@login_required
def run_actions(request: HttpRequest, pk: int) -> HttpResponse:
    """Re-sync, open exceptions for, or accept the selected differences of the run."""
    run = _run(pk)
    fallback = reverse("reconciliation:run-detail", args=[run.pk])
    form = DifferenceActionForm(request.POST)
    if not form.is_valid():
        for error in form.errors.values():
            messages.error(request, " ".join(error))
        return _back(request, request.POST.get("next", ""), fallback)
    data = form.cleaned_data
    differences = list(
        Difference.objects.filter(run=run, pk__in=data["ids"]).select_related(
            "run__definition__source", "run__definition__target", "exception", "acceptance"
        )
    )
    try:
        if not differences:
            raise actions.InvalidInput("None of the selected differences belong to this run.")
        outcomes = actions.act(data["action"], differences, request.user, data.get("reason"))
    except actions.ActionRefused as refused:
        messages.error(request, str(refused))
    else:
        report(request, data["action"], outcomes)
    return _back(request, data.get("next") or "", fallback)


@require_GET
@login_required
def difference_page(request: HttpRequest, pk: int) -> HttpResponse:
    diff = get_object_or_404(
        Difference.objects.select_related(
            "run__definition__source",
            "run__definition__target",
            "exception__queue",
            "acceptance__accepted_by",
        ),
        pk=pk,
    )
    allowed = actions.can_see_amounts(request.user)
    return render(
        request,
        "reconciliation/difference.html",
        {
            "diff": diff,
            "run": diff.run,
            "definition": diff.run.definition,
            "comparison": catalogue.get(diff.run.definition.kind),
            "what_differs": display.field_differences(diff, allowed),
            "source_fields": display.fields_shown(diff.source_fields, allowed),
            "target_fields": display.fields_shown(diff.target_fields, allowed),
            "at_risk_shown": display.shown(diff.amount_at_risk, allowed),
            "source_amount": display.shown(diff.source_amount, allowed),
            "target_amount": display.shown(diff.target_amount, allowed),
            "can_act": actions.can_act(request.user),
            "amounts_shown": allowed,
        },
    )
