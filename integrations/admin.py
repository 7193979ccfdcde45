"""Back-office admin of the integration engine. Connection secrets are write-only: the form
takes new values as JSON and encrypts them; only the stored secret names are ever shown."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from .models import (
    ApiCall,
    BusinessTimestamp,
    Connection,
    ErpRoute,
    ExchangeRate,
    Expectation,
    ExternalBinding,
    InboundEvent,
    LegalEntity,
    NotificationDelivery,
    NotificationEndpoint,
    OutboxMessage,
    PostingBatch,
    ProjectTemplate,
    SyncRun,
    SyncStep,
    SystemOfRecordRule,
    Watermark,
    WriteLedger,
)


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never renders a value back (like PasswordInput(render_value=False))."""

    def format_value(self, value: Any) -> None:
        return None


class ConnectionAdminForm(forms.ModelForm):
    base_url = forms.URLField(max_length=500, assume_scheme="https")
    secrets = forms.JSONField(
        required=False,
        widget=WriteOnlyTextarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"}),
        help_text=(
            'Write-only. A JSON object such as {"client_secret": "..."}. On a new connection it '
            "sets the secrets; on an existing one it updates the named secrets and keeps the "
            "others (empty values are ignored). Leave blank to keep the stored secrets."
        ),
    )
    replace_secrets = forms.BooleanField(
        required=False,
        help_text="Replace all stored secrets with the JSON above instead of merging.",
    )

    class Meta:
        model = Connection
        fields = ["name", "vendor", "system", "base_url", "auth_kind", "settings", "enabled"]

    def clean_secrets(self) -> dict[str, Any] | None:
        value = self.cleaned_data.get("secrets")
        if value in (None, "", {}):
            return None
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise forms.ValidationError("Enter a JSON object of secret names to values.")
        return value

    def save(self, commit: bool = True) -> Connection:
        connection: Connection = super().save(commit=False)
        values = self.cleaned_data.get("secrets")
        if not connection.secrets_ciphertext:
            connection.set_secrets(values or {})
        elif values is not None and self.cleaned_data.get("replace_secrets"):
            connection.set_secrets(values)
        elif values is not None:
            connection.update_secrets(values)
        if commit:
            connection.save()
        return connection


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    form = ConnectionAdminForm
    list_display = ["name", "vendor", "system", "base_url", "enabled", "stored_secrets"]
    list_filter = ["system", "vendor", "enabled"]
    search_fields = ["name", "base_url"]
    readonly_fields = ["stored_secrets", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "vendor", "system", "base_url", "auth_kind", "enabled"]}),
        ("Configuration", {"fields": ["settings"]}),
        ("Secrets", {"fields": ["stored_secrets", "secrets", "replace_secrets"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description="secret names")
    def stored_secrets(self, obj: Connection) -> str:
        return ", ".join(obj.secret_names) or "none"


@admin.register(LegalEntity)
class LegalEntityAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "country", "currency", "region"]
    list_filter = ["region", "country"]
    search_fields = ["code", "name"]


@admin.register(ProjectTemplate)
class ProjectTemplateAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "billing_model", "duration_days"]
    list_filter = ["billing_model"]
    search_fields = ["code", "name"]


@admin.register(SystemOfRecordRule)
class SystemOfRecordRuleAdmin(admin.ModelAdmin):
    list_display = ["entity", "field", "owner", "note"]
    list_filter = ["owner", "entity"]
    search_fields = ["entity", "field"]


@admin.register(ExternalBinding)
class ExternalBindingAdmin(admin.ModelAdmin):
    list_display = ["entity_type", "canonical_key", "connection", "external_id", "updated_at"]
    list_filter = ["entity_type", "connection"]
    list_select_related = ["connection"]
    search_fields = ["canonical_key", "external_id"]
    raw_id_fields = ["created_by_run"]


@admin.register(Watermark)
class WatermarkAdmin(admin.ModelAdmin):
    list_display = ["connection", "stream", "value", "updated_at"]
    list_filter = ["connection"]
    list_select_related = ["connection"]


class ReadOnlyAdminMixin:
    """View-only admin: no add, change or delete."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SyncStepInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = SyncStep
    extra = 0
    fields = ["position", "name", "status", "attempts", "started_at", "finished_at", "error"]
    readonly_fields = fields
    ordering = ["position"]
    show_change_link = True


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = [
        "correlation_id",
        "workflow",
        "status",
        "legal_entity_code",
        "region",
        "attempts",
        "created_at",
    ]
    list_filter = ["status", "workflow", "trigger", "region"]
    search_fields = ["correlation_id", "title"]
    list_select_related = ["source_connection"]
    raw_id_fields = ["source_connection"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    inlines = [SyncStepInline]


@admin.register(SyncStep)
class SyncStepAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["run", "position", "name", "status", "attempts", "finished_at"]
    list_filter = ["status", "name"]
    list_select_related = ["run"]
    search_fields = ["run__correlation_id"]
    show_full_result_count = False


@admin.register(ApiCall)
class ApiCallAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "started_at",
        "connection",
        "operation",
        "method",
        "status_code",
        "latency_ms",
        "attempts",
        "error_kind",
    ]
    list_filter = ["connection", "error_kind", "method"]
    list_select_related = ["connection"]
    search_fields = ["operation", "path", "idempotency_key"]
    show_full_result_count = False


@admin.register(ErpRoute)
class ErpRouteAdmin(admin.ModelAdmin):
    list_display = ["legal_entity", "document", "connection", "effective_from", "note"]
    list_filter = ["document", "connection", "legal_entity"]
    ordering = ["legal_entity__code", "document", "-effective_from"]


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "task", "queue", "topic", "key", "created_at", "sent_at", "attempts"]
    list_filter = ["task", "queue", ("sent_at", admin.EmptyFieldListFilter)]
    search_fields = ["key", "task"]


@admin.register(Expectation)
class ExpectationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["business_key", "milestone", "due_at", "met_at", "stuck_at"]
    list_filter = ["milestone", ("met_at", admin.EmptyFieldListFilter)]
    search_fields = ["business_key"]


@admin.register(BusinessTimestamp)
class BusinessTimestampAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["business_key", "name", "at", "source"]
    list_filter = ["name"]
    search_fields = ["business_key"]


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["received_at", "event_type", "source", "idempotency_key", "status", "run"]
    list_filter = ["status", "event_type", "source"]
    search_fields = ["idempotency_key"]


@admin.register(WriteLedger)
class WriteLedgerAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["connection", "entity_type", "external_id", "written_at"]
    list_filter = ["connection", "entity_type"]
    search_fields = ["external_id"]


@admin.register(NotificationEndpoint)
class NotificationEndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "url", "enabled"]


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "endpoint", "topic", "key", "delivered", "status_code"]
    list_filter = ["delivered", "topic", "endpoint"]


@admin.register(ExchangeRate)
class ExchangeRateAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["effective_date", "base", "quote", "rate", "source"]
    list_filter = ["base", "quote", "source"]


@admin.register(PostingBatch)
class PostingBatchAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "record_type",
        "psa",
        "erp",
        "status",
        "created_count",
        "existing_count",
        "error_count",
        "reported",
    ]
    list_filter = ["status", "record_type", "erp"]
    exclude = ["entries"]
