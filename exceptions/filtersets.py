"""Filters over exceptions: the queue pages and the API share this one FilterSet."""

from __future__ import annotations

import datetime as dt

import django_filters
from django.db.models import Q, QuerySet
from django.utils import timezone

from integrations.choices import Region
from integrations.filtersets import SearchFilterSet

from .choices import (
    ACTIVE_STATUSES,
    DUE_SOON_FRACTION,
    Category,
    ExceptionCode,
    ExceptionStatus,
    SlaState,
)
from .models import IntegrationException, Queue

#: the status filter's extra value: every status that still needs a person
ACTIVE = "active"
STATUS_FILTER_CHOICES = [
    (ACTIVE, "Active (open, in progress, retry queued)"),
    *ExceptionStatus.choices,
]
#: the assignee filter's words besides a username
ME, UNASSIGNED = "me", "unassigned"


class IntegrationExceptionFilterSet(SearchFilterSet):
    search_fields = ("title", "entity_ref", "run__correlation_id")
    status = django_filters.MultipleChoiceFilter(
        choices=STATUS_FILTER_CHOICES, method="filter_status", label="Status"
    )
    # distinct=False: no join multiplies rows here, and a DISTINCT over a million rows would
    # read them all before the first page
    code = django_filters.MultipleChoiceFilter(choices=ExceptionCode.choices, distinct=False)
    category = django_filters.ChoiceFilter(choices=Category.choices)
    queue = django_filters.CharFilter(method="filter_queue", label="Queue (slug)")
    unresolved = django_filters.BooleanFilter(method="filter_unresolved", label="Unresolved")
    assignee = django_filters.CharFilter(
        method="filter_assignee",
        label="Assignee",
        help_text='A username, "me" or "unassigned".',
    )
    sla = django_filters.ChoiceFilter(
        choices=SlaState.choices,
        method="filter_sla",
        label="SLA",
        help_text="Active exceptions only: breached (past due), due soon (last fifth of the "
        "queue's SLA), on time.",
    )
    older_than_hours = django_filters.NumberFilter(
        method="filter_older_than", label="First seen more than (hours) ago", min_value=0
    )
    newer_than_hours = django_filters.NumberFilter(
        method="filter_newer_than", label="First seen less than (hours) ago", min_value=0
    )
    incident = django_filters.NumberFilter(field_name="incident", label="Incident (number)")
    # legal entity codes are kept in capitals (UK01): "uk01" finds them, and the index serves
    legal_entity_code = django_filters.CharFilter(
        method="filter_upper", field_name="legal_entity_code", label="Legal entity"
    )
    region = django_filters.CharFilter(method="filter_region", label="Region")

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

    def filter_upper(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(**{name: value.strip().upper()}) if value.strip() else queryset

    def filter_region(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        """A region by its name in any case ("emea", "americas")."""
        wanted = value.strip().lower()
        if not wanted:
            return queryset
        known = {choice.lower(): choice for choice in Region.values}
        return queryset.filter(region=known.get(wanted, value.strip()))

    def filter_unresolved(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        if value is None:
            return queryset
        if value:
            return queryset.exclude(status=ExceptionStatus.RESOLVED)
        return queryset.filter(status=ExceptionStatus.RESOLVED)

    def filter_queue(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # The slug is looked up first, so the planner sees a queue id and can use the queue
        # indexes (a join on the slug would sort every matching row of a million).
        if not value:
            return queryset
        queue_id = Queue.objects.filter(slug=value).values_list("pk", flat=True).first()
        return queryset.filter(queue_id=queue_id) if queue_id is not None else queryset.none()

    def filter_status(self, queryset: QuerySet, name: str, value: list[str]) -> QuerySet:
        statuses: set[str] = set()
        for status in value:
            statuses.update(ACTIVE_STATUSES if status == ACTIVE else [status])
        return queryset.filter(status__in=sorted(statuses)) if statuses else queryset

    def filter_assignee(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if not value:
            return queryset
        if value.lower() == UNASSIGNED:
            return queryset.filter(assignee__isnull=True)
        if value.lower() == ME:
            user = getattr(self.request, "user", None)
            if user is None or not user.is_authenticated:
                return queryset.none()
            return queryset.filter(assignee=user)
        return queryset.filter(assignee__username=value)

    def filter_sla(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if not value:
            return queryset
        now = timezone.now()
        active = queryset.filter(status__in=ACTIVE_STATUSES)
        if value == SlaState.BREACHED:
            return active.filter(due_at__lte=now)
        # due soon: inside the last fifth of each queue's own SLA window (one bound per
        # distinct SLA length, so each branch stays an index range on due_at)
        by_hours: dict[int, list[int]] = {}
        for pk, hours in Queue.objects.values_list("pk", "sla_hours"):
            by_hours.setdefault(hours, []).append(pk)
        soon = Q(pk__in=[])
        for hours, queue_ids in by_hours.items():
            bound = now + dt.timedelta(hours=hours * DUE_SOON_FRACTION)
            soon |= Q(queue_id__in=queue_ids, due_at__lte=bound)
        if value == SlaState.DUE_SOON:
            return active.filter(soon, due_at__gt=now)
        return active.filter(Q(due_at__isnull=True) | (Q(due_at__gt=now) & ~soon))

    def filter_older_than(self, queryset: QuerySet, name: str, value: float | None) -> QuerySet:
        if value is None:
            return queryset
        return queryset.filter(first_seen__lte=timezone.now() - dt.timedelta(hours=float(value)))

    def filter_newer_than(self, queryset: QuerySet, name: str, value: float | None) -> QuerySet:
        if value is None:
            return queryset
        return queryset.filter(first_seen__gte=timezone.now() - dt.timedelta(hours=float(value)))
