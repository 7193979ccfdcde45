"""Back-office admin of the exception queues."""

from __future__ import annotations

from django.contrib import admin

from .models import IntegrationException, Queue


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
    raw_id_fields = ["run", "step", "connection", "resolved_by"]
    readonly_fields = ["fingerprint", "first_seen", "last_seen"]
    date_hierarchy = "last_seen"
    show_full_result_count = False
