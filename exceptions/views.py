"""Console pages of the exceptions app: the queues, one queue's exceptions (filtered, with a
Retry button where the user may act), one exception in full, and the retry action."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django.views.generic import DetailView, ListView

from integrations.views import tidy_filter_form

from .actions import ActionRefused, can_act, retry
from .choices import ExceptionStatus
from .filtersets import IntegrationExceptionFilterSet
from .models import IntegrationException, Queue

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
    """Every queue with its unresolved count; the user's teams' queues first."""

    model = Queue
    template_name = "exceptions/queue_list.html"
    context_object_name = "queues"

    def get_queryset(self) -> QuerySet[Queue]:
        unresolved = ~Q(exceptions__status=ExceptionStatus.RESOLVED)
        return (
            Queue.objects.select_related("team")
            .annotate(open_count=Count("exceptions", filter=unresolved))
            .order_by("name")
        )

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        team_ids = set(self.request.user.memberships.values_list("team_id", flat=True))
        queues = list(context["queues"])
        context["my_queues"] = [q for q in queues if q.team_id in team_ids]
        context["other_queues"] = [q for q in queues if q.team_id not in team_ids]
        return context


class QueueView(LoginRequiredMixin, ListView):
    """One queue's exceptions, filtered by IntegrationExceptionFilterSet (unresolved by
    default), newest activity first."""

    template_name = "exceptions/queue.html"
    context_object_name = "exceptions"
    paginate_by = 50

    def get_queryset(self) -> QuerySet[IntegrationException]:
        self.queue = get_object_or_404(
            Queue.objects.select_related("team"), slug=self.kwargs["slug"]
        )
        data = self.request.GET.copy()
        if "unresolved" not in data and "status" not in data:
            data["unresolved"] = "true"
        queryset = _exceptions().filter(queue=self.queue)
        self.filterset = IntegrationExceptionFilterSet(data, queryset=queryset)
        # The page is the queue; runs are millions, so the run filter is an id, not a list.
        self.filterset.filters.pop("queue")
        self.filterset.form.fields["run"].widget = forms.HiddenInput()
        tidy_filter_form(self.filterset.form)
        if not self.filterset.is_valid():
            return queryset.none()
        return self.filterset.qs

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        allowed: dict[int, bool] = {}
        for exc in context["exceptions"]:
            # can_act depends on the queue's team only: ask once per team, not once per row.
            team_id = exc.queue.team_id
            if team_id not in allowed:
                allowed[team_id] = can_act(self.request.user, exc)
            exc.user_can_act = allowed[team_id] and exc.status == ExceptionStatus.OPEN
        context.update(queue=self.queue, filter_form=self.filterset.form)
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
        payload, payload_chars = pretty_json(exc.payload)
        vendor_error, vendor_error_chars = pretty_json(exc.vendor_error)
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
