"""Admin registrations of the dashboards app (read-only analytics rows)."""

from django.contrib import admin

from .models import MilestoneFact


@admin.register(MilestoneFact)
class MilestoneFactAdmin(admin.ModelAdmin):
    list_display = ["story_id", "deal_key", "psa_connection_id", "recorded_at"]
    search_fields = ["deal_key", "story_id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
