"""App config of the dashboards (KPIs, connector health, reconciliation: later issues)."""

from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "dashboards"
    verbose_name = "Dashboards"

    def ready(self) -> None:
        from integrations import outbox

        from . import tasks  # noqa: F401

        outbox.subscribe("milestone.completed", "dashboards.record_milestone")
