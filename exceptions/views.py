"""Console pages of the exceptions app: the queues, one queue's exceptions (filtered, with a
Retry button where the user may act), one exception in full, and the retry action."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django.views.generic import DetailView, ListView

from .actions import ActionRefused, can_act, retry
from .choices import ExceptionStatus
from .links import record_links
from .masking import amount_for, data_for, has_finance_rights
from .models import IntegrationException, Queue
from .pagination import CURSOR_PARAM, InvalidCursor, paginate
from .queue_counts import with_counts
from .queue_pages import queue_filter_data, queue_filterset
from .saved_views import normalise_query, page_url, views_of

#: Payloads can be megabytes; the page shows this many characters of the pretty JSON.
PAYLOAD_DISPLAY_CHARS = 20_000


def pretty_json(data: Any, limit: int = PAYLOAD_DISPLAY_CHARS) -> tuple[str, int]:
    """Indented JSON clipped to `limit` characters, and the full length (to say it was cut).

    The text is rendered auto-escaped inside <pre>; nothing here is ever marked safe.
    """
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    return text[:limit], len(text)


def _exceptions() -> QuerySet[IntegrationException]:
    return IntegrationException.objects.select_related("queue__team", "run")


class QueueListView(LoginRequiredMixin, ListView):
    """Every queue with its active and SLA-breached counts; the user's teams' queues first,
    then the user's saved views."""

    model = Queue
    template_name = "exceptions/queue_list.html"
    context_object_name = "queues"

    def get_queryset(self) -> QuerySet[Queue]:
        return Queue.objects.select_related("team").order_by("name")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        team_ids = set(self.request.user.memberships.values_list("team_id", flat=True))
        # one grouped count over the active work only (exceptions.queue_counts)
        queues = with_counts(context["queues"])
        for queue in queues:
            queue.open_count = queue.active_count  # the work waiting (open, in progress, retry)
        context["my_queues"] = [q for q in queues if q.team_id in team_ids]
        context["other_queues"] = [q for q in queues if q.team_id not in team_ids]
        saved = list(views_of(self.request.user))
        for view in saved:
            view.page_url = page_url(view)
        context["saved_views"] = saved
        return context


class QueueView(LoginRequiredMixin, ListView):
    """One queue's exceptions, filtered by IntegrationExceptionFilterSet (active by default),
    newest activity first, paged by keyset (exceptions.pagination: page 200 costs what page
    1 costs), with the user's saved views and a CSV export of the same filter."""

    template_name = "exceptions/queue.html"
    context_object_name = "exceptions"

    def get_queryset(self) -> QuerySet[IntegrationException]:
        self.queue = get_object_or_404(
            Queue.objects.select_related("team"), slug=self.kwargs["slug"]
        )
        # The page is the queue; runs are millions, so the run filter is an id, not a list.
        self.filterset = queue_filterset(self.request, self.queue)
        if not self.filterset.is_valid():
            return self.filterset.queryset.none()
        return self.filterset.qs

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        user = self.request.user
        try:
            page = paginate(self.object_list, self.request.GET.get(CURSOR_PARAM))
        except InvalidCursor as invalid:
            messages.warning(self.request, str(invalid))
            page = paginate(self.object_list, None)
        # can_act depends on the queue's team only: every row is in this queue, so ask once.
        allowed = user.can_act_for(self.queue.team)
        for exc in page.rows:
            exc.user_can_act = allowed and exc.status == ExceptionStatus.OPEN
            exc.amount_shown = amount_for(user, exc.amount)
        filter_query = normalise_query(queue_filter_data(self.request))
        export_url = reverse("exceptions:export", args=[self.queue.slug])
        context.update(
            queue=self.queue,
            filter_form=self.filterset.form,
            exceptions=page.rows,
            page=page,
            filter_query=filter_query,
            export_url=f"{export_url}?{filter_query}" if filter_query else export_url,
            saved_views=list(views_of(user, self.queue)),
            user_can_act_on_queue=allowed,
            # asked only when the page shows money (one query saved on most queues)
            finance_masked=any(e.amount is not None for e in page.rows)
            and not has_finance_rights(user),
        )
        return context


class ExceptionDetailView(LoginRequiredMixin, DetailView):
    """One exception: what failed, why, what to do, and the data behind it."""

    template_name = "exceptions/detail.html"
    context_object_name = "exc"

    def get_queryset(self) -> QuerySet[IntegrationException]:
        return _exceptions().select_related("step", "connection", "resolved_by")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        exc: IntegrationException = self.object
        user = self.request.user
        # Money, bank and tax fields are masked for users without finance rights.
        payload, payload_chars = pretty_json(data_for(user, exc.payload))
        vendor_error, vendor_error_chars = pretty_json(data_for(user, exc.vendor_error))
        context.update(
            record_links=record_links(exc),
            amount_shown=amount_for(user, exc.amount),
            finance_masked=not has_finance_rights(user),
        )
        context.update(
            user_can_act=exc.status == ExceptionStatus.OPEN and can_act(self.request.user, exc),
            payload_json=payload,
            payload_chars=payload_chars,
            payload_truncated=payload_chars > PAYLOAD_DISPLAY_CHARS,
            vendor_error_json=vendor_error,
            vendor_error_chars=vendor_error_chars,
            vendor_error_truncated=vendor_error_chars > PAYLOAD_DISPLAY_CHARS,
            display_limit=PAYLOAD_DISPLAY_CHARS,
        )
        return context


@require_POST
@login_required
def retry_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Retry an exception's run (exceptions.actions.retry), then go back where the user was."""
    exc = get_object_or_404(_exceptions().select_related("connection"), pk=pk)
    try:
        result = retry(exc, request.user)
    except ActionRefused as refused:
        messages.error(request, str(refused))
    else:
        level = messages.SUCCESS if result.ok else messages.WARNING
        messages.add_message(request, level, result.message)
    target = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = exc.get_absolute_url()
    return HttpResponseRedirect(target)
