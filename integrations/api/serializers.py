"""REST serializers of the engine's records: connections (secrets write-only, encrypted),
sync runs with their steps, and API-call telemetry."""

from __future__ import annotations

from typing import Any

from django.core.validators import URLValidator
from django.db import models, transaction
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import build_choice_field
from rest_framework import serializers

from console import audit

from ..choices import VENDOR_SYSTEM, AuthKind, RunStatus, StepStatus, SystemKind, Vendor
from ..models import ApiCall, Connection, SyncRun, SyncStep


class EnumField(serializers.ChoiceField):
    """A choice field over one TextChoices class, documented as the schema component
    `<ChoicesClass>Enum` (so two sets that share a field name, e.g. `status`, never clash)."""

    def __init__(self, choices_class: type[models.TextChoices], **kwargs: Any) -> None:
        self.choices_class = choices_class
        super().__init__(choices=choices_class.choices, **kwargs)


class EnumFieldExtension(OpenApiSerializerFieldExtension):
    """Names the schema of an EnumField after its TextChoices class."""

    target_class = EnumField
    match_subclasses = True

    def get_name(self) -> str:
        return f"{self.target.choices_class.__name__}Enum"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return build_choice_field(self.target)


class ConnectionSerializer(serializers.ModelSerializer):
    """A connection. `secrets` is write-only: responses only ever list `secret_names`.

    On create the given secrets are stored (encrypted); on update they are merged over the
    stored ones (a name sent with an empty value keeps its stored value).
    """

    vendor = EnumField(Vendor)
    system = EnumField(SystemKind)
    auth_kind = EnumField(AuthKind)
    base_url = serializers.URLField(
        max_length=500, validators=[URLValidator(schemes=["http", "https"])]
    )
    settings = serializers.DictField(
        required=False, help_text="Non-secret configuration (a JSON object)."
    )
    secrets = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        write_only=True,
        required=False,
        help_text="Secret values by name; stored encrypted and never returned.",
    )
    secret_names = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="Names of the stored secrets (never their values).",
    )

    class Meta:
        model = Connection
        fields = [
            "id",
            "name",
            "vendor",
            "system",
            "base_url",
            "auth_kind",
            "settings",
            "enabled",
            "secrets",
            "secret_names",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        vendor = attrs.get("vendor", getattr(self.instance, "vendor", None))
        system = attrs.get("system", getattr(self.instance, "system", None))
        if vendor and system and VENDOR_SYSTEM[Vendor(vendor)] != system:
            expected = VENDOR_SYSTEM[Vendor(vendor)]
            raise serializers.ValidationError(
                {"system": f"{Vendor(vendor).label} is a {expected.label} system."}
            )
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Connection:
        secrets = validated_data.pop("secrets", {})
        connection = Connection(**validated_data)
        connection.set_secrets(secrets)
        with transaction.atomic():
            connection.save()
            self._audit("connection.created", f"Connection {connection} created", connection)
        return connection

    def update(self, instance: Connection, validated_data: dict[str, Any]) -> Connection:
        secrets = validated_data.pop("secrets", None)
        for attr, value in validated_data.items():
            setattr(instance, attr, value)
        if secrets:
            instance.update_secrets(secrets)
        with transaction.atomic():
            instance.save()
            self._audit("connection.updated", f"Connection {instance} updated", instance)
        return instance

    def _audit(self, action: str, summary: str, connection: Connection) -> None:
        request = self.context.get("request")
        changed = sorted(set(self.initial_data) - {"secrets"})
        audit.record(
            action,
            summary,
            actor=getattr(request, "user", None),
            obj=connection,
            fields=changed,
            secret_names=connection.secret_names,
        )


class SyncStepSerializer(serializers.ModelSerializer):
    """One step of a run."""

    status = EnumField(StepStatus, read_only=True)

    class Meta:
        model = SyncStep
        fields = [
            "name",
            "position",
            "status",
            "attempts",
            "started_at",
            "finished_at",
            "output",
            "error",
        ]
        read_only_fields = fields


class SyncRunSerializer(serializers.ModelSerializer):
    """A run, as listed."""

    status = EnumField(RunStatus, read_only=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = SyncRun
        fields = [
            "id",
            "workflow",
            "correlation_id",
            "trigger",
            "status",
            "source_connection",
            "title",
            "legal_entity_code",
            "region",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
        ]
        read_only_fields = fields


class SyncRunDetailSerializer(SyncRunSerializer):
    """A run with its input, context, error, steps and the ids of its exceptions."""

    steps = SyncStepSerializer(many=True, read_only=True)
    exceptions = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta(SyncRunSerializer.Meta):
        fields = [
            *SyncRunSerializer.Meta.fields,
            "input",
            "context",
            "error",
            "steps",
            "exceptions",
        ]
        read_only_fields = fields


class ApiCallSerializer(serializers.ModelSerializer):
    """Telemetry of one logical vendor API call (all its attempts)."""

    step_name = serializers.CharField(source="step.name", read_only=True, allow_null=True)
    retries = serializers.IntegerField(read_only=True)

    class Meta:
        model = ApiCall
        fields = [
            "id",
            "connection",
            "run",
            "step",
            "step_name",
            "operation",
            "method",
            "path",
            "status_code",
            "latency_ms",
            "attempts",
            "retries",
            "idempotency_key",
            "error_kind",
            "error_message",
            "rate_limit",
            "started_at",
            "batch_key",
            "runs_served",
        ]
        read_only_fields = fields
