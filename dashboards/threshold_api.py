"""REST API of SLA thresholds and their alerts (mounted under /api/v1/ by dashboards.urls):

- `/api/v1/kpi-thresholds/`: a team's warning and breach boundaries on a KPI (optionally for
  one legal entity, region or connection) or on a queue's active or SLA-breached count. Anyone
  signed in reads them; only superusers and admins of the owning team create, change or
  delete them, and every change is audited with the settings before and after.
- `/api/v1/metric-alerts/` (read only): the alerts they raised, newest first, filtered by
  `state`, `kpi`, `queue` (slug), `team` (slug) and `open`.

Money KPIs show their amounts only to users with finance rights and to the leadership team
(dashboards.kpi_queries.can_see_money); everyone else gets `masked: true` and no amounts.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from rest_framework import serializers, viewsets
from rest_framework.exceptions import PermissionDenied

from console.models import Team
from exceptions.models import Queue
from integrations.api.serializers import EnumField
from integrations.models import Connection

from . import kpis, thresholds
from .kpi_queries import can_see_money
from .models import KpiThreshold, MetricAlert

AMOUNTS = ("warning", "breach", "value", "opened_value")


def _masks(kpi_key: str, request: Any) -> bool:
    kpi = kpis.BY_KEY.get(kpi_key)
    return bool(kpi is not None and kpi.is_money and not can_see_money(request.user))


class KpiThresholdSerializer(serializers.ModelSerializer):
    """A threshold: what it watches, its boundaries, its direction and its owning team."""

    kpi = serializers.CharField(
        max_length=40,
        allow_blank=True,
        required=False,
        help_text="A KPI key of /api/v1/kpis/ (blank for a queue threshold).",
    )
    queue = serializers.SlugRelatedField(
        slug_field="slug", queryset=Queue.objects.all(), allow_null=True, required=False
    )
    connection = serializers.PrimaryKeyRelatedField(
        queryset=Connection.objects.all(), allow_null=True, required=False
    )
    team = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Team.objects.all(),
        required=False,
        help_text="The owning team (default for a queue threshold: the queue's team).",
    )
    measure = EnumField(KpiThreshold.Measure, required=False)
    direction = EnumField(KpiThreshold.Direction, required=False, allow_blank=True)
    subject = serializers.CharField(read_only=True, help_text="What is watched, in words.")
    masked = serializers.SerializerMethodField()

    class Meta:
        model = KpiThreshold
        fields = [
            "id",
            *thresholds.SETTINGS,
            "subject",
            "masked",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "subject", "masked", "created_at", "updated_at"]

    def get_masked(self, threshold: KpiThreshold) -> bool:
        return _masks(threshold.kpi, self.context["request"])

    def to_representation(self, instance: KpiThreshold) -> dict[str, Any]:
        data = super().to_representation(instance)
        if data["masked"]:
            data.update(dict.fromkeys(("warning", "breach")))
        return data

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        queue = attrs.get("queue", getattr(self.instance, "queue", None))
        if "team" not in attrs and self.instance is None:
            if queue is None:
                raise serializers.ValidationError({"team": ["Say which team owns it."]})
            attrs["team"] = queue.team
        if queue is not None and "measure" not in attrs and self.instance is None:
            attrs["measure"] = KpiThreshold.Measure.ACTIVE
        candidate = KpiThreshold(
            **{f: getattr(self.instance, f) for f in thresholds.SETTINGS} if self.instance else {}
        )
        for name, value in attrs.items():
            setattr(candidate, name, value)
        for name in ("kpi", "legal_entity_code", "region", "direction"):
            if getattr(candidate, name) is None:
                setattr(candidate, name, "")
        try:
            thresholds.check_threshold(candidate)
        except DjangoValidationError as refused:
            raise serializers.ValidationError(refused.message_dict) from refused
        return attrs

    def create(self, validated_data: dict[str, Any]) -> KpiThreshold:
        threshold = KpiThreshold(**validated_data)
        return thresholds.save_threshold(threshold, self.context["request"].user)

    def update(self, instance: KpiThreshold, validated_data: dict[str, Any]) -> KpiThreshold:
        before = thresholds.snapshot(instance)
        for name, value in validated_data.items():
            setattr(instance, name, value)
        return thresholds.save_threshold(instance, self.context["request"].user, before)


class KpiThresholdFilterSet(django_filters.FilterSet):
    kpi = django_filters.CharFilter()
    queue = django_filters.CharFilter(field_name="queue__slug", help_text="Queue slug.")
    team = django_filters.CharFilter(field_name="team__slug", help_text="Team slug.")
    enabled = django_filters.BooleanFilter()

    class Meta:
        model = KpiThreshold
        fields = ["kpi", "queue", "team", "enabled"]


class KpiThresholdViewSet(viewsets.ModelViewSet):
    """SLA thresholds on KPIs and queues. Changing one takes a superuser or an admin of its
    owning team (of both teams when it changes hands); every change is audited."""

    serializer_class = KpiThresholdSerializer
    queryset = KpiThreshold.objects.select_related("team", "queue", "connection")
    filterset_class = KpiThresholdFilterSet
    ordering_fields = ["kpi", "created_at", "updated_at"]

    def _require(self, team: Team | None) -> None:
        if not thresholds.can_manage(self.request.user, team):
            raise PermissionDenied(
                f"Only an admin of {team or 'the owning team'} (or a superuser) may change "
                "its thresholds."
            )

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        self._require(serializer.validated_data.get("team"))
        serializer.save()

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        self._require(serializer.instance.team)
        self._require(serializer.validated_data.get("team", serializer.instance.team))
        serializer.save()

    def perform_destroy(self, instance: KpiThreshold) -> None:
        self._require(instance.team)
        thresholds.delete_threshold(instance, self.request.user)


class MetricAlertSerializer(serializers.ModelSerializer):
    """One alert: what crossed which boundary, when, and what each notice's channel said."""

    queue = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    measure = EnumField(KpiThreshold.Measure, read_only=True)
    state = EnumField(MetricAlert.AlertState, read_only=True)
    worst = EnumField(
        MetricAlert.AlertState, read_only=True, help_text="The worst state reached while open."
    )
    masked = serializers.SerializerMethodField()

    class Meta:
        model = MetricAlert
        fields = [
            "id",
            "threshold",
            "kpi",
            "queue",
            "measure",
            "scope",
            "team",
            "state",
            "worst",
            "value",
            "opened_value",
            "warning",
            "breach",
            "opened_at",
            "recovered_at",
            "notified_at",
            "channel_results",
            "masked",
        ]
        read_only_fields = fields

    def get_masked(self, alert: MetricAlert) -> bool:
        return _masks(alert.kpi, self.context["request"])

    def to_representation(self, instance: MetricAlert) -> dict[str, Any]:
        data = super().to_representation(instance)
        if data["masked"]:
            data.update(dict.fromkeys(AMOUNTS))
        return data


class MetricAlertFilterSet(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=MetricAlert.AlertState.choices)
    kpi = django_filters.CharFilter()
    queue = django_filters.CharFilter(field_name="queue__slug", help_text="Queue slug.")
    team = django_filters.CharFilter(field_name="team__slug", help_text="Team slug.")
    open = django_filters.BooleanFilter(
        field_name="recovered_at", lookup_expr="isnull", help_text="true: not recovered yet."
    )

    class Meta:
        model = MetricAlert
        fields = ["state", "kpi", "queue", "team", "open"]


class MetricAlertViewSet(viewsets.ReadOnlyModelViewSet):
    """The alerts thresholds raised, newest first (kept for good, never deleted)."""

    serializer_class = MetricAlertSerializer
    queryset = MetricAlert.objects.select_related("team", "queue")
    filterset_class = MetricAlertFilterSet
    ordering_fields = ["opened_at", "recovered_at"]

    def get_queryset(self) -> QuerySet[MetricAlert]:
        return super().get_queryset().order_by("-opened_at", "-pk")
