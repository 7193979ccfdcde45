"""GET /api/v1/silent-failure-audits/: the silent-failure audits' results, newest first
(reconciliation.silent_audit), filtered by when they ran and whether they found silent
events; the detail lists the findings (what went silent, and why)."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from rest_framework import serializers, viewsets
from rest_framework.routers import SimpleRouter

from .models import SilentFailureAudit

app_name = "silent-audit-api"


class FindingSerializer(serializers.Serializer):
    event = serializers.CharField(help_text="the event (its id, key or correlation id)")
    source = serializers.CharField(help_text="where it came from")
    event_type = serializers.CharField()
    received_at = serializers.DateTimeField()
    why = serializers.CharField(help_text="why it counts as silent")


class SilentFailureAuditSerializer(serializers.ModelSerializer):
    findings = FindingSerializer(many=True, read_only=True)

    class Meta:
        model = SilentFailureAudit
        fields = [
            "id",
            "checked_at",
            "window_start",
            "window_end",
            "events",
            "applied",
            "as_exception",
            "in_flight",
            "rejected",
            "silent",
            "findings",
        ]
        read_only_fields = fields


class SilentFailureAuditListSerializer(SilentFailureAuditSerializer):
    """The list leaves the findings to the detail."""

    class Meta(SilentFailureAuditSerializer.Meta):
        fields = [f for f in SilentFailureAuditSerializer.Meta.fields if f != "findings"]
        read_only_fields = fields


class SilentFailureAuditFilterSet(django_filters.FilterSet):
    checked_after = django_filters.IsoDateTimeFilter(
        field_name="checked_at", lookup_expr="gte", help_text="ran at or after (ISO 8601)"
    )
    checked_before = django_filters.IsoDateTimeFilter(
        field_name="checked_at", lookup_expr="lt", help_text="ran before (ISO 8601)"
    )
    has_silent = django_filters.BooleanFilter(
        method="filter_has_silent", help_text="true: only audits that found silent events"
    )

    class Meta:
        model = SilentFailureAudit
        fields = ["checked_after", "checked_before", "has_silent"]

    def filter_has_silent(
        self, queryset: QuerySet[SilentFailureAudit], name: str, value: bool | None
    ) -> QuerySet[SilentFailureAudit]:
        if value is None:
            return queryset
        return queryset.filter(silent__gt=0) if value else queryset.filter(silent=0)


class SilentFailureAuditViewSet(viewsets.ReadOnlyModelViewSet):
    """Silent-failure audits, newest first; the detail adds the findings."""

    queryset = SilentFailureAudit.objects.all()
    serializer_class = SilentFailureAuditSerializer
    filterset_class = SilentFailureAuditFilterSet
    ordering_fields = ["checked_at", "silent"]
    ordering = ["-checked_at", "-id"]

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        if self.action == "list":
            return SilentFailureAuditListSerializer
        return SilentFailureAuditSerializer


router = SimpleRouter()
router.register("silent-failure-audits", SilentFailureAuditViewSet)
urlpatterns = router.urls
