"""The queue page's filter (shared by the page, its CSV export and its saved views) and the
small pages around it: save the current filter as a view, delete a view, export to CSV.

Reading is open to every signed-in user (exceptions.masking explains the access rules);
saved views are private to their owner."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from console import audit
from integrations.views import tidy_filter_form

from . import saved_views
from .export import csv_response, export_filename
from .filtersets import ACTIVE, IntegrationExceptionFilterSet
from .models import IntegrationException, Queue, SavedView

#: labels of the queue page's filters, in the business's words
FILTER_LABELS = {
    "q": "Search",
    "code": "Problem",
    "legal_entity_code": "Legal entity",
    "region": "Region",
    "connection": "Connection",
    "category": "Category",
    "unresolved": "Unresolved",
}


def queue_filter_data(request: HttpRequest) -> QueryDict:
    """The page's query with its default: active exceptions unless a status is asked for."""
    data = request.GET.copy()
    if "status" not in data and "unresolved" not in data:
        data.setlist("status", [ACTIVE])
    return data


def queue_filterset(request: HttpRequest, queue: Queue) -> IntegrationExceptionFilterSet:
    """IntegrationExceptionFilterSet over one queue's exceptions, as the queue page uses it
    (the queue filter is the page itself; the run filter is an id, not a list of millions)."""
    queryset = IntegrationException.objects.filter(queue=queue).select_related(
        "queue__team", "run", "assignee"
    )
    filterset = IntegrationExceptionFilterSet(
        queue_filter_data(request), queryset=queryset, request=request
    )
    filterset.filters.pop("queue")
    filterset.form.fields["run"].widget = forms.HiddenInput()
    tidy_filter_form(filterset.form, FILTER_LABELS)
    filterset.form.fields["assignee"].widget.attrs["placeholder"] = 'a username, "me", "unassigned"'
    return filterset


def _back(request: HttpRequest, default: str) -> HttpResponseRedirect:
    target = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = default
    return HttpResponseRedirect(target)


@require_POST
@login_required
def save_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Save the queue page's current filter under a name (form fields `name`, `query`)."""
    queue = get_object_or_404(Queue, slug=slug)
    query = request.POST.get("query", "")
    try:
        view = saved_views.save_view(request.user, request.POST.get("name", ""), query, queue=queue)
    except saved_views.SavedViewError as refused:
        messages.error(request, str(refused))
        normal = saved_views.normalise_query(query)
        url = queue.get_absolute_url()
        return HttpResponseRedirect(f"{url}?{normal}" if normal else url)
    messages.success(request, f'Saved the view "{view.name}".')
    return HttpResponseRedirect(saved_views.page_url(view) or queue.get_absolute_url())


@require_POST
@login_required
def delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete one of one's own saved views (someone else's is not found)."""
    view = get_object_or_404(SavedView, pk=pk, owner=request.user)
    default = view.queue.get_absolute_url() if view.queue else "/exceptions/"
    saved_views.delete_view(view, request.user)
    messages.success(request, f'Deleted the view "{view.name}".')
    return _back(request, default)


@require_GET
@login_required
def export_csv(request: HttpRequest, slug: str) -> HttpResponse:
    """The queue page's filtered exceptions as a CSV file (masked like the page)."""
    queue = get_object_or_404(Queue.objects.select_related("team"), slug=slug)
    filterset = queue_filterset(request, queue)
    if not filterset.is_valid():
        messages.error(request, "Fix the filters before exporting: some values are not valid.")
        url = queue.get_absolute_url()
        return HttpResponseRedirect(f"{url}?{request.GET.urlencode()}")
    query = saved_views.normalise_query(queue_filter_data(request))
    audit.record(
        "exception.exported",
        f"CSV export of {queue}: {query or 'no filters'}",
        actor=request.user,
        obj=queue,
        query=query,
    )
    return csv_response(
        filterset.qs,
        request.user,
        filename=export_filename(queue.slug),
        base_url=request.build_absolute_uri("/"),
    )
