"""Filters over incidents: the incidents page and the API share this one FilterSet."""

from __future__ import annotations

import django_filters

from integrations.filtersets import SearchFilterSet

from .choices import ExceptionCode, IncidentStatus
from .models import Incident, Queue


class IncidentFilterSet(SearchFilterSet):
    search_fields = ("title", "cause_key")
    status = django_filters.MultipleChoiceFilter(choices=IncidentStatus.choices)
    code = django_filters.MultipleChoiceFilter(choices=ExceptionCode.choices, label="Cause (code)")
    queue = django_filters.ModelChoiceFilter(
        queryset=Queue.objects.order_by("name"),
        to_field_name="slug",
        label="Queue",
        help_text="The queue's slug.",
    )

    class Meta:
        model = Incident
        fields = ["status", "code", "queue"]
