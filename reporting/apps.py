from django.apps import AppConfig


class ReportingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "reporting"
    verbose_name = "Reporting extracts"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (schedule edits made under Periodic tasks)
