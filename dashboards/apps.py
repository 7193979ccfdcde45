"""App config of the dashboards (KPIs, connector health, reconciliation: later issues)."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DashboardsConfig(AppConfig):
    name = "dashboards"
    verbose_name = "Dashboards"

    def ready(self) -> None:
        from integrations import outbox

        from . import health_tasks, receivers, tasks  # noqa: F401

        outbox.subscribe("milestone.completed", "dashboards.record_milestone")
        post_migrate.connect(receivers.fill_empty_rollups, sender=self)
