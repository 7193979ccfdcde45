"""Admin registrations of the dashboards app (read-only analytics rows)."""

from django.contrib import admin

from .models import (
    EarnedRevenueFact,
    InvoicePaymentFact,
    KpiRollup,
    KpiThreshold,
    MetricAlert,
    MilestoneFact,
    ProjectMarginFact,
)


@admin.register(MilestoneFact)
class MilestoneFactAdmin(admin.ModelAdmin):
    list_display = ["story_id", "deal_key", "psa_connection_id", "recorded_at"]
    search_fields = ["deal_key", "story_id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class _ViewOnlyAdmin(admin.ModelAdmin):
    """Rows nobody adds, changes or deletes here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class _FactAdmin(_ViewOnlyAdmin):
    """Facts are what a vendor system said: written by their receivers only, never edited
    (a rebuild of the rollups reads them)."""


@admin.register(InvoicePaymentFact)
class InvoicePaymentFactAdmin(_FactAdmin):
    list_display = [
        "number",
        "invoice_key",
        "legal_entity_code",
        "currency",
        "total",
        "amount_remaining",
        "state",
        "invoiced_at",
        "seen_at",
    ]
    list_filter = ["state", "legal_entity_code", "currency"]
    search_fields = ["invoice_key", "number", "erp_invoice_id"]


@admin.register(EarnedRevenueFact)
class EarnedRevenueFactAdmin(_FactAdmin):
    list_display = [
        "line_key",
        "period_name",
        "period_end",
        "legal_entity_code",
        "currency",
        "amount",
        "recorded_at",
    ]
    list_filter = ["legal_entity_code", "currency", "period_name"]
    search_fields = ["line_key", "contract_key", "deal_key"]


@admin.register(ProjectMarginFact)
class ProjectMarginFactAdmin(_FactAdmin):
    list_display = [
        "deal_key",
        "source",
        "currency",
        "planned_margin",
        "billed",
        "cost",
        "unpriced",
        "legal_entity_code",
        "recorded_at",
    ]
    list_filter = ["legal_entity_code", "currency"]
    search_fields = ["deal_key", "source"]


@admin.register(KpiRollup)
class KpiRollupAdmin(_ViewOnlyAdmin):
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


@admin.register(KpiThreshold)
class KpiThresholdAdmin(admin.ModelAdmin):
    """Thresholds are edited here or through /api/v1/kpi-thresholds/: superusers and admins
    of the owning team only, audited with before and after (dashboards.thresholds)."""

    list_display = ["__str__", "kpi", "queue", "measure", "warning", "breach", "team", "enabled"]
    list_filter = ["enabled", "team", "measure"]

    def has_change_permission(self, request, obj=None) -> bool:
        from .thresholds import can_manage

        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or can_manage(request.user, obj.team))

    def has_delete_permission(self, request, obj=None) -> bool:
        from .thresholds import can_manage

        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or can_manage(request.user, obj.team))

    def save_model(self, request, obj, form, change) -> None:
        from .thresholds import save_threshold, snapshot

        before = snapshot(KpiThreshold.objects.get(pk=obj.pk)) if change else None
        save_threshold(obj, request.user, before)

    def delete_model(self, request, obj) -> None:
        from .thresholds import delete_threshold

        delete_threshold(obj, request.user)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(MetricAlert)
class MetricAlertAdmin(_ViewOnlyAdmin):
    """Alert history: written by dashboards.thresholds only, never deleted."""

    list_display = ["__str__", "state", "worst", "team", "opened_at", "recovered_at", "notified_at"]
    list_filter = ["state", "kpi", "team"]
    date_hierarchy = "opened_at"
