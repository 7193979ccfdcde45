"""Filters over exceptions: the queue pages and the API share this one FilterSet."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet

from integrations.filtersets import SearchFilterSet

from .choices import Category, ExceptionCode, ExceptionStatus
from .models import IntegrationException


class IntegrationExceptionFilterSet(SearchFilterSet):
    search_fields = ("title", "entity_ref", "run__correlation_id")
    status = django_filters.MultipleChoiceFilter(choices=ExceptionStatus.choices)
    code = django_filters.MultipleChoiceFilter(choices=ExceptionCode.choices)
    category = django_filters.ChoiceFilter(choices=Category.choices)
    queue = django_filters.CharFilter(field_name="queue__slug", label="Queue (slug)")
    unresolved = django_filters.BooleanFilter(method="filter_unresolved", label="Unresolved")

    class Meta:
        model = IntegrationException
        fields = [
            "status",
            "code",
            "category",
            "queue",
            "legal_entity_code",
            "region",
            "connection",
            "run",
        ]

    def filter_unresolved(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        if value is None:
            return queryset
        if value:
            return queryset.exclude(status=ExceptionStatus.RESOLVED)
        return queryset.filter(status=ExceptionStatus.RESOLVED)
