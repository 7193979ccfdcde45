from django.contrib import admin

from .models import Acceptance, Definition, Difference, Run, SilentFailureAudit, SnapshotRecord


@admin.register(Definition)
class DefinitionAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "source", "target", "schedule", "enabled"]
    list_filter = ["kind", "enabled"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "definition", "status", "mode", "trigger", "matched", "created_at"]
    list_filter = ["status", "definition"]
    readonly_fields = [f.name for f in Run._meta.fields]


@admin.register(Difference)
class DifferenceAdmin(admin.ModelAdmin):
    list_display = ["key", "kind", "run", "legal_entity", "amount_at_risk", "state"]
    list_filter = ["kind", "state"]
    raw_id_fields = ["run", "exception", "acceptance"]


@admin.register(Acceptance)
class AcceptanceAdmin(admin.ModelAdmin):
    list_display = ["definition", "key", "kind", "accepted_by", "accepted_at"]
    readonly_fields = ["signature", "accepted_by", "accepted_at"]


@admin.register(SnapshotRecord)
class SnapshotRecordAdmin(admin.ModelAdmin):
    list_display = ["definition", "side", "key", "native_id", "copies", "status"]
    list_filter = ["definition", "side"]
    search_fields = ["key", "native_id"]


@admin.register(SilentFailureAudit)
class SilentFailureAuditAdmin(admin.ModelAdmin):
    list_display = ["checked_at", "events", "applied", "as_exception", "in_flight", "silent"]
    readonly_fields = [f.name for f in SilentFailureAudit._meta.fields]
