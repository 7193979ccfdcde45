"""Admin registrations of the dashboards app (read-only analytics rows)."""

from django.contrib import admin

from .models import KpiRollup, MilestoneFact


@admin.register(MilestoneFact)
class MilestoneFactAdmin(admin.ModelAdmin):
    list_display = ["story_id", "deal_key", "psa_connection_id", "recorded_at"]
    search_fields = ["deal_key", "story_id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(KpiRollup)
class KpiRollupAdmin(admin.ModelAdmin):
    """Rollups change only through dashboards.rollups (record, rebuild): view-only here."""

    list_display = [
        "kpi",
        "grain",
        "bucket",
        "legal_entity_code",
        "region",
        "connection_id",
        "currency",
        "count",
        "total",
    ]
    list_filter = ["kpi", "grain", "legal_entity_code", "region"]
    date_hierarchy = "bucket"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
