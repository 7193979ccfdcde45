"""REST serializers of the exception queues: queues with their open counts, exceptions, and
the answer of the retry action."""

from __future__ import annotations

from rest_framework import serializers

from integrations.api.serializers import EnumField

from ..choices import Category, ExceptionCode, ExceptionStatus
from ..models import IntegrationException, Queue


class QueueSerializer(serializers.ModelSerializer):
    """A queue, its owning team and how much work is waiting in it."""

    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    team_name = serializers.CharField(source="team.name", read_only=True)
    open_count = serializers.IntegerField(
        read_only=True, help_text="Exceptions waiting for a person (status open)."
    )
    unresolved_count = serializers.IntegerField(
        read_only=True, help_text="Exceptions not resolved yet (open or retry queued)."
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
            "open_count",
            "unresolved_count",
        ]
        read_only_fields = fields


class IntegrationExceptionSerializer(serializers.ModelSerializer):
    """An exception: what failed, why in business words, who owns it, where it stands."""

    queue = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    code = EnumField(ExceptionCode, read_only=True)
    category = EnumField(Category, read_only=True)
    status = EnumField(ExceptionStatus, read_only=True)
    correlation_id = serializers.CharField(
        source="run.correlation_id", read_only=True, allow_null=True
    )
    resolved_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

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
        ]
        read_only_fields = fields


class RetryResultSerializer(serializers.Serializer):
    """What a retry request did: the exception's status afterwards, in words."""

    status = EnumField(ExceptionStatus, read_only=True)
    message = serializers.CharField(read_only=True)
