from django.contrib import admin

from .models import Extract, ExtractRun


class ExtractRunInline(admin.TabularInline):
    model = ExtractRun
    extra = 0
    can_delete = False
    fields = ["started_at", "status", "rows", "file_path", "bytes", "error", "triggered_by"]
    readonly_fields = fields
    ordering = ["-started_at"]
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(Extract)
class ExtractAdmin(admin.ModelAdmin):
    list_display = ["name", "dataset", "format", "schedule", "enabled", "watermark_at"]
    list_filter = ["dataset", "format", "enabled"]
    search_fields = ["name"]
    readonly_fields = ["periodic_task", "created_at", "updated_at"]
    inlines = [ExtractRunInline]


@admin.register(ExtractRun)
class ExtractRunAdmin(admin.ModelAdmin):
    list_display = ["extract", "started_at", "status", "rows", "bytes", "file_path"]
    list_filter = ["status", "extract"]
    readonly_fields = [f.name for f in ExtractRun._meta.fields]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False
