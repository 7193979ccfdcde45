"""Filters over the engine's records: one FilterSet serves the console pages and the API."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from .choices import RunStatus, SystemKind, Vendor
from .models import ApiCall, Connection, SyncRun
from .telemetry import calls_of_runs


class SearchFilterSet(django_filters.FilterSet):
    """Adds `q`, a free-text search over the fields named in `search_fields`."""

    search_fields: tuple[str, ...] = ()
    q = django_filters.CharFilter(method="search", label="Search")

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if not value:
            return queryset
        condition = Q()
        for field in self.search_fields:
            condition |= Q(**{f"{field}__icontains": value})
        return queryset.filter(condition)


class ConnectionFilterSet(SearchFilterSet):
    search_fields = ("name", "base_url")
    vendor = django_filters.ChoiceFilter(choices=Vendor.choices)
    system = django_filters.ChoiceFilter(choices=SystemKind.choices)

    class Meta:
        model = Connection
        fields = ["vendor", "system", "enabled"]


class SyncRunFilterSet(SearchFilterSet):
    search_fields = ("correlation_id", "title")
    status = django_filters.MultipleChoiceFilter(choices=RunStatus.choices)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = SyncRun
        fields = ["workflow", "status", "correlation_id", "legal_entity_code", "region", "trigger"]


class ApiCallFilterSet(django_filters.FilterSet):
    started_after = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    failed = django_filters.BooleanFilter(method="filter_failed", label="Failed calls only")
    run = django_filters.NumberFilter(
        method="filter_run", label="Calls made for this run (its own and the bulk calls it shared)"
    )

    class Meta:
        model = ApiCall
        fields = ["connection", "run", "operation", "status_code", "error_kind", "batch_key"]

    def filter_run(self, queryset: QuerySet, name: str, value: int | None) -> QuerySet:
        if value is None:
            return queryset
        return queryset.filter(pk__in=calls_of_runs([int(value)]).values("pk"))

    def filter_failed(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        if value is None:
            return queryset
        return queryset.exclude(error_kind="") if value else queryset.filter(error_kind="")
