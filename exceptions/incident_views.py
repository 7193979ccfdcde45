"""Console pages of incidents: the list (open ones first by default, filtered by
IncidentFilterSet) and one incident with what it blocks, its exceptions and its alerts.

Every signed-in user reads incidents, as they read queues; money shows only to users with
finance rights (exceptions.masking).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.views.generic import DetailView, ListView

from integrations.views import tidy_filter_form

from .choices import ACTIVE_STATUSES, IncidentStatus
from .incident_filtersets import IncidentFilterSet
from .incidents import Impact, impacts, resolution_of
from .masking import MASK, has_finance_rights
from .models import Incident, IntegrationException

#: exceptions listed on an incident's page (the rest: the queue page or the API, filtered
#: by incident)
EXCEPTIONS_SHOWN = 200


def money_rows(impact: Impact, user: Any) -> list[tuple[str, Any]]:
    """(currency, amount) pairs as the user may see them."""
    if has_finance_rights(user):
        return impact.money_list
    return [(currency, MASK) for currency, _ in impact.money_list]


class IncidentListView(LoginRequiredMixin, ListView):
    """Incidents, open by default, most recent activity first."""

    template_name = "exceptions/incidents.html"
    context_object_name = "incidents"
    paginate_by = 50

    def get_queryset(self) -> QuerySet[Incident]:
        data = self.request.GET.copy()
        if "status" not in data:
            data.setlist("status", [IncidentStatus.OPEN])
        queryset = Incident.objects.select_related("queue__team")
        self.filterset = IncidentFilterSet(data, queryset=queryset, request=self.request)
        tidy_filter_form(self.filterset.form)
        if not self.filterset.is_valid():
            return queryset.none()
        return self.filterset.qs

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        incidents = list(context["incidents"])
        found = impacts(incidents)
        for incident in incidents:
            incident.impact = found[incident.pk]
            incident.money_shown = money_rows(incident.impact, self.request.user)
        context.update(incidents=incidents, filter_form=self.filterset.form)
        return context


class IncidentDetailView(LoginRequiredMixin, DetailView):
    """One incident: its cause, what it blocks, its exceptions (active first), its alerts."""

    template_name = "exceptions/incident_detail.html"
    context_object_name = "incident"

    def get_queryset(self) -> QuerySet[Incident]:
        return Incident.objects.select_related("queue__team")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        incident: Incident = self.object
        impact = impacts([incident])[incident.pk]
        active_first = Case(
            When(status__in=ACTIVE_STATUSES, then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        )
        exceptions = list(
            IntegrationException.objects.filter(incident=incident)
            .select_related("queue__team", "assignee")
            .order_by(active_first, "-last_seen", "-pk")[: EXCEPTIONS_SHOWN + 1]
        )
        context.update(
            impact=impact,
            money_shown=money_rows(impact, self.request.user),
            exceptions=exceptions[:EXCEPTIONS_SHOWN],
            more_exceptions=len(exceptions) > EXCEPTIONS_SHOWN,
            alerts=list(incident.alerts.order_by("created_at", "pk")),
            resolution=resolution_of(incident),
        )
        return context
