"""Filters over reconciliation runs and differences: the pages and the API share them."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet

from integrations.filtersets import SearchFilterSet

from .models import Acceptance, Difference, Kind, Run


class DifferenceFilterSet(SearchFilterSet):
    """A run's differences by class, state, legal entity and key (or either record's id)."""

    search_fields = ("key", "source_id", "target_id")
    q = django_filters.CharFilter(
        method="search", label="Key", help_text="Part of the key or of either record's id."
    )
    # distinct=False: no join multiplies rows here
    kind = django_filters.MultipleChoiceFilter(
        choices=Kind.choices,
        distinct=False,
        label="Class",
        widget=forms.CheckboxSelectMultiple,
    )
    state = django_filters.MultipleChoiceFilter(
        choices=Difference.State.choices,
        distinct=False,
        label="State",
        widget=forms.CheckboxSelectMultiple,
    )
    # legal entity codes are kept in capitals (UK01): "uk01" finds them
    legal_entity = django_filters.CharFilter(method="filter_upper", label="Legal entity")

    class Meta:
        model = Difference
        fields = ["kind", "state", "legal_entity"]

    def __init__(self, *args: Any, legal_entities: list[str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if legal_entities is not None:
            # on a run's page: the run's legal entities to choose from
            choices = [("", "Any"), *[(code, code) for code in legal_entities]]
            self.form.fields["legal_entity"].widget = forms.Select(choices=choices)

    def filter_upper(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        code = value.strip().upper()
        return queryset.filter(legal_entity=code) if code else queryset


class RunFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Run.Status.choices, distinct=False)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Run
        fields = ["definition", "status", "mode", "trigger"]


class AcceptanceFilterSet(django_filters.FilterSet):
    class Meta:
        model = Acceptance
        fields = ["definition", "key", "kind"]
