"""REST API of incidents (read-only): what each root cause blocks, its exceptions and the
alerts sent about it. Filtered by IncidentFilterSet, the one the incidents page uses.

Money is per currency, each amount a decimal string; for users without finance rights the
amounts read "•••• (finance only)" (exceptions.masking), as on the pages.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Case, IntegerField, QuerySet, Value, When
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, viewsets

from integrations.api.serializers import EnumField

from ..choices import (
    ACTIVE_STATUSES,
    AlertChannel,
    AlertEvent,
    ExceptionCode,
    ExceptionStatus,
    IncidentStatus,
)
from ..incident_filtersets import IncidentFilterSet
from ..incidents import Impact, impacts, resolution_of
from ..masking import MASK, has_finance_rights
from ..models import Alert, Incident, IntegrationException

#: exceptions listed in one incident's answer (the rest: /exceptions/?incident=<id>)
EXCEPTIONS_LISTED = 200


class MoneySerializer(serializers.Serializer):
    currency = serializers.CharField(read_only=True, help_text="ISO 4217 code.")
    amount = serializers.CharField(
        read_only=True, help_text=f'A decimal string (to the cent), or "{MASK}".'
    )


class IncidentExceptionSerializer(serializers.ModelSerializer):
    """One exception of an incident, in short (the full record: /exceptions/{id}/)."""

    queue = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    status = EnumField(ExceptionStatus, read_only=True)

    class Meta:
        model = IntegrationException
        fields = [
            "id",
            "title",
            "queue",
            "status",
            "legal_entity_code",
            "occurrences",
            "last_seen",
            "due_at",
        ]
        read_only_fields = fields


class AlertSerializer(serializers.ModelSerializer):
    """An alert sent (or attempted) about an incident."""

    channel = EnumField(AlertChannel, read_only=True)
    event = EnumField(AlertEvent, read_only=True)

    class Meta:
        model = Alert
        fields = ["id", "event", "channel", "target", "created_at", "sent_at", "error"]
        read_only_fields = fields


class IncidentSerializer(serializers.ModelSerializer):
    """An incident: one root cause, the records it blocks and the money they carry."""

    code = EnumField(ExceptionCode, read_only=True, help_text="The root cause's code.")
    status = EnumField(IncidentStatus, read_only=True)
    queue = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    blocked_records = serializers.SerializerMethodField(
        help_text="Exceptions of it still waiting for a person (open, in progress, retrying)."
    )
    records = serializers.SerializerMethodField(help_text="Exceptions gathered in it, in all.")
    occurrences = serializers.SerializerMethodField(
        help_text="Failures seen of the blocked records (of all records once resolved)."
    )
    money = serializers.SerializerMethodField(
        help_text="Money the blocked records carry per currency (all records once resolved)."
    )
    resolution = serializers.SerializerMethodField(help_text="Why it resolved ('' while open).")

    class Meta:
        model = Incident
        fields = [
            "id",
            "title",
            "code",
            "status",
            "queue",
            "cause_key",
            "first_seen",
            "last_seen",
            "resolved_at",
            "resolution",
            "blocked_records",
            "records",
            "occurrences",
            "money",
        ]
        read_only_fields = fields

    def _impact(self, obj: Incident) -> Impact:
        found: dict[int, Impact] = self.context.setdefault("impacts", {})
        if obj.pk not in found:
            found.update(impacts([obj]))
        return found[obj.pk]

    def get_blocked_records(self, obj: Incident) -> int:
        return self._impact(obj).blocked

    def get_records(self, obj: Incident) -> int:
        return self._impact(obj).records

    def get_occurrences(self, obj: Incident) -> int:
        return self._impact(obj).occurrences

    @extend_schema_field(MoneySerializer(many=True))
    def get_money(self, obj: Incident) -> list[dict[str, str]]:
        request = self.context.get("request")
        allowed = request is not None and has_finance_rights(request.user)
        return [
            {"currency": currency, "amount": str(amount) if allowed else MASK}
            for currency, amount in self._impact(obj).money_list
        ]

    def get_resolution(self, obj: Incident) -> str:
        return resolution_of(obj)


class IncidentDetailSerializer(IncidentSerializer):
    """An incident with its exceptions (active first, at most 200) and its alerts."""

    exceptions = serializers.SerializerMethodField()
    alerts = AlertSerializer(many=True, read_only=True)

    class Meta(IncidentSerializer.Meta):
        fields = [*IncidentSerializer.Meta.fields, "exceptions", "alerts"]
        read_only_fields = fields

    @extend_schema_field(IncidentExceptionSerializer(many=True))
    def get_exceptions(self, obj: Incident) -> list[dict[str, Any]]:
        active_first = Case(
            When(status__in=ACTIVE_STATUSES, then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        )
        rows = (
            IntegrationException.objects.filter(incident=obj)
            .select_related("queue")
            .order_by(active_first, "-last_seen", "-pk")[:EXCEPTIONS_LISTED]
        )
        return IncidentExceptionSerializer(rows, many=True, context=self.context).data


class IncidentViewSet(viewsets.ReadOnlyModelViewSet):
    """Incidents: exceptions that share one root cause. Filter by `status`, `code`, `queue`
    (slug) and `q` (title or cause); the detail lists its exceptions and alerts."""

    queryset = Incident.objects.select_related("queue")
    serializer_class = IncidentSerializer
    filterset_class = IncidentFilterSet
    ordering_fields = ["last_seen", "first_seen", "id"]

    def get_queryset(self) -> QuerySet[Incident]:
        queryset = super().get_queryset()
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("alerts")
        return queryset

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return IncidentDetailSerializer if self.action == "retrieve" else IncidentSerializer

    def paginate_queryset(self, queryset: QuerySet[Incident]) -> list[Incident] | None:
        page = super().paginate_queryset(queryset)
        # what each incident of the page blocks, in two queries for the whole page
        self._impacts = impacts(page if page is not None else list(queryset))
        return page

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        context["impacts"] = dict(getattr(self, "_impacts", {}))
        return context
