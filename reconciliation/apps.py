from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "reconciliation"
    verbose_name = "Reconciliation"

    def ready(self) -> None:
        # failed runs open an exception for IT; schedule edits made under Periodic tasks
        from . import receivers  # noqa: F401
