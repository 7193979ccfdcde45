"""Back-office admin of the exception queues."""

from __future__ import annotations

from django.contrib import admin

from .models import (
    Alert,
    BulkAction,
    Comment,
    Incident,
    IntegrationException,
    PayloadEdit,
    Queue,
    RoutingRule,
    SavedView,
)


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "team"]
    list_filter = ["team"]
    list_select_related = ["team"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ("name",)}


@admin.register(IntegrationException)
class IntegrationExceptionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "title",
        "code",
        "status",
        "queue",
        "legal_entity_code",
        "region",
        "occurrences",
        "last_seen",
    ]
    list_filter = ["status", "category", "queue", "code", "region", "legal_entity_code"]
    list_select_related = ["queue"]
    search_fields = ["title", "entity_ref", "run__correlation_id", "fingerprint"]
    raw_id_fields = ["run", "step", "connection", "resolved_by", "assignee", "incident"]
    readonly_fields = ["fingerprint", "first_seen", "last_seen"]
    date_hierarchy = "last_seen"
    show_full_result_count = False


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    list_display = ["position", "name", "queue", "enabled", "version", "updated_at"]
    list_select_related = ["queue"]
    ordering = ["position"]


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "code", "status", "queue", "first_seen", "last_seen"]
    list_filter = ["status", "code", "queue"]
    list_select_related = ["queue"]


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ["exception", "author", "created_at"]
    raw_id_fields = ["exception"]


@admin.register(SavedView)
class SavedViewAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "queue", "query"]


@admin.register(PayloadEdit)
class PayloadEditAdmin(admin.ModelAdmin):
    list_display = ["exception", "author", "status", "needs_approval", "created_at"]
    raw_id_fields = ["exception"]


@admin.register(BulkAction)
class BulkActionAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "status", "done", "total", "created_by", "created_at"]
    list_filter = ["kind", "status"]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["incident", "event", "channel", "target", "sent_at", "error"]
    list_filter = ["event", "channel"]
