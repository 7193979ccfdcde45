"""REST serializers of the exception queues: queues with their active counts, exceptions, and
the answer of the retry action."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from integrations.api.serializers import EnumField

from ..choices import Category, ExceptionCode, ExceptionStatus, SlaState
from ..masking import MASK, FinanceMaskingMixin
from ..models import IntegrationException, Queue
from ..sla import sla_state


class QueueSerializer(serializers.ModelSerializer):
    """A queue, its owning team and how much work is waiting in it."""

    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    team_name = serializers.CharField(source="team.name", read_only=True)
    active_count = serializers.IntegerField(
        read_only=True,
        help_text="Active exceptions: open, in progress or retry queued (as on the queue list).",
    )
    breached_count = serializers.IntegerField(
        read_only=True, help_text="Active exceptions past their SLA due time."
    )
    open_count = serializers.IntegerField(
        source="active_count",
        read_only=True,
        help_text="Deprecated: the same as active_count (it used to count status open only).",
    )
    unresolved_count = serializers.IntegerField(
        source="active_count",
        read_only=True,
        help_text="Deprecated: the same as active_count (it used to count ignored ones too).",
    )

    class Meta:
        model = Queue
        fields = [
            "id",
            "slug",
            "name",
            "team",
            "team_name",
            "description",
            "active_count",
            "breached_count",
            "open_count",
            "unresolved_count",
        ]
        read_only_fields = fields


class IntegrationExceptionSerializer(FinanceMaskingMixin, serializers.ModelSerializer):
    """An exception: what failed, why in business words, who owns it, where it stands.

    For users without finance rights `amount` reads "•••• (finance only)" and the money, bank
    and tax fields of `payload` and `vendor_error` are masked the same way (exceptions.masking)."""

    queue = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    code = EnumField(ExceptionCode, read_only=True)
    category = EnumField(Category, read_only=True)
    status = EnumField(ExceptionStatus, read_only=True)
    correlation_id = serializers.CharField(
        source="run.correlation_id", read_only=True, allow_null=True
    )
    resolved_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    assignee = serializers.SlugRelatedField(slug_field="username", read_only=True)
    amount = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text=f'The money the failed record carries (a decimal string), or "{MASK}".',
    )
    finance_masked = serializers.SerializerMethodField(
        help_text="True when amounts, bank and tax fields are masked for you."
    )
    sla_state = serializers.SerializerMethodField(
        help_text="Against its queue's SLA: ok, due_soon (last fifth of the window) or "
        "breached (past due_at); ok when no clock runs (resolved, ignored)."
    )

    class Meta:
        model = IntegrationException
        fields = [
            "id",
            "queue",
            "code",
            "category",
            "status",
            "title",
            "explanation",
            "suggested_fix",
            "run",
            "correlation_id",
            "step",
            "connection",
            "entity_type",
            "entity_ref",
            "legal_entity_code",
            "region",
            "payload",
            "vendor_error",
            "occurrences",
            "first_seen",
            "last_seen",
            "resolved_at",
            "resolved_by",
            "resolution",
            "assignee",
            "assigned_manually",
            "ignored_reason",
            "ignored_until",
            "amount",
            "currency",
            "finance_masked",
            "incident",
            "due_at",
            "sla_state",
            "escalated_at",
        ]
        read_only_fields = fields

    def get_finance_masked(self, obj: IntegrationException) -> bool:
        return True  # FinanceMaskingMixin sets the real answer

    @extend_schema_field(EnumField(SlaState))
    def get_sla_state(self, obj: IntegrationException) -> str:
        return str(sla_state(obj))


class RetryResultSerializer(serializers.Serializer):
    """What a retry request did: the exception's status afterwards, in words."""

    status = EnumField(ExceptionStatus, read_only=True)
    message = serializers.CharField(read_only=True)
